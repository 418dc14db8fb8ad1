"""The limiter shared by every process and host: a token bucket, leased concurrency slots
and a first-come-first-served queue of waiters, all rows in the database (see the package
docstring for how a request gets its turn)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest

from image_ranking import dbclock
from image_ranking.commons.ratelimit.leases import keeper
from image_ranking.commons.ratelimit.verdict import (
    GO,
    NEXT_IN_LINE_RECHECK,
    LimiterConfig,
    State,
    Verdict,
    judge,
    refill_per_second,
)
from image_ranking.commons.ratelimit.waits import ToldToWait, bounded_wait, check_block, secs
from image_ranking.models import RateLimitBucket, RateLimitSlot, RateLimitTicket

logger = logging.getLogger(__name__)

TICKET_GRACE_SECONDS = 60.0  # expired tickets are deleted after this ...
TICKET_SWEEP_EVERY = 16  # ... by every 16th new ticket
LOG_WAIT_SECONDS = 0.5


class SharedLimiter:
    """A token bucket, leased concurrency slots and a queue of waiters, all in the database."""

    def __init__(self, config: LimiterConfig) -> None:
        self.config = config
        self.holder = f"{socket.gethostname()}:{os.getpid()}"

    # --- public ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def slot(self, max_wait: float | None = None) -> Iterator[None]:
        """Wait for a free slot and a token (and for any block to pass), then hold the slot.

        Raises RateLimitTimeout when the wait would exceed `max_wait` seconds, and
        BudgetExhausted when it would overrun the current work's time budget; both say what
        was waited for.
        """
        started = time.monotonic()
        max_wait, over = bounded_wait(self.config.name, max_wait)
        deadline = None if max_wait is None else started + max_wait
        holder = f"{self.holder}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"
        what = self._acquire(holder, started, deadline, over)
        keeper.add_slot(holder, self.config.lease_seconds)
        try:
            waited = time.monotonic() - started
            if waited >= LOG_WAIT_SECONDS:
                logger.info(
                    "%s: request waited %.1f s for the rate limit (last for %s)",
                    self.config.name,
                    waited,
                    what,
                )
            yield
        except ToldToWait as told:
            self.block_for(told.seconds)  # before the slot is freed (see ToldToWait)
            raise
        finally:
            keeper.drop_slot(holder)
            self._release(holder)

    def block_until(self, epoch: float) -> None:
        """No worker may start a request of this bucket before `epoch` (THIS host's clock)."""
        self.block_for(epoch - time.time())

    def block_for(self, seconds: float) -> None:
        """No worker may start a request of this bucket for `seconds` from now.

        Refuses (ValueError) a non-finite or negative duration: stored, an inf or nan would
        stop every worker until someone edited the row by hand."""
        check_block(self.config.name, seconds)
        self._ensure_rows()
        with transaction.atomic():
            until = dbclock.epoch() + seconds
            RateLimitBucket.objects.filter(name=self.config.name).update(
                blocked_until=Greatest(F("blocked_until"), Value(until))
            )
        logger.warning(
            "%s: server asked to wait; all workers pause for %.1f s", self.config.name, seconds
        )

    # --- internals -------------------------------------------------------------------------
    def _ensure_rows(self) -> None:
        cfg = self.config
        if not RateLimitBucket.objects.filter(name=cfg.name).exists():
            with contextlib.suppress(IntegrityError), transaction.atomic():
                RateLimitBucket.objects.create(
                    name=cfg.name, tokens=cfg.burst, refilled_at=dbclock.epoch()
                )
        existing = RateLimitSlot.objects.filter(bucket=cfg.name).count()
        if existing < cfg.concurrency:
            RateLimitSlot.objects.bulk_create(
                [RateLimitSlot(bucket=cfg.name, index=i) for i in range(cfg.concurrency)],
                ignore_conflicts=True,
            )

    def _acquire(
        self,
        holder: str,
        started: float,
        deadline: float | None,
        over: Callable[[float, str], Exception],
    ) -> str:
        """Wait for this request's turn and take a slot (and a token); returns what it last
        waited for ("" when it went at once)."""
        self._ensure_rows()
        ticket: int | None = None
        renewed: int | None = None  # the ticket the heartbeat renews while this waits
        granted = False
        what = ""
        try:
            verdict, ticket = self._attempt(holder, None)
            if ticket is not None:
                renewed = ticket
                keeper.add_ticket(ticket, self.config.lease_seconds)
            while verdict.wait > 0:
                what = verdict.what
                now = time.monotonic()
                left = math.inf if deadline is None else deadline - now
                if verdict.known and verdict.wait > left and verdict.wait >= 1.0:
                    raise over(verdict.wait, f"would wait {secs(verdict.wait)} s for {what}")
                if left <= 0:
                    raise over(now - started, f"waited {secs(now - started)} s for {what}")
                time.sleep(min(verdict.wait, left))
                if not verdict.known:
                    verdict = self._look(ticket)
                    if verdict.wait > 0:
                        continue
                verdict, ticket = self._attempt(holder, ticket)
            granted = True
            return what
        finally:
            # A granted attempt returns no ticket (its row is gone): the heartbeat must still
            # forget the one it renewed, or it would write for it every beat, for ever.
            if renewed is not None:
                keeper.drop_ticket(renewed)
            if ticket is not None and not granted:
                self._drop_ticket(ticket)

    def _state(self, bucket: RateLimitBucket, now: float, ticket: int | None) -> State:
        cfg = self.config
        slots = RateLimitSlot.objects.filter(bucket=cfg.name, index__lt=cfg.concurrency)
        free, held = [], []
        for index, holder, expires_at in slots.values_list("index", "holder", "expires_at"):
            if not holder or expires_at < now:
                free.append(index)
            else:
                held.append((expires_at, holder))
        queue = RateLimitTicket.objects.filter(bucket=cfg.name, expires_at__gt=now)
        if ticket is not None:
            queue = queue.filter(pk__lt=ticket)
        tokens = float(cfg.burst)
        if cfg.per_hour > 0:
            elapsed = max(0.0, now - bucket.refilled_at)
            tokens = min(cfg.burst, bucket.tokens + elapsed * refill_per_second(cfg))
        return State(
            now, bucket.blocked_until, tokens, tuple(sorted(free)), tuple(held), queue.count()
        )

    def _look(self, ticket: int | None) -> Verdict:
        """A read-only look (no write lock, no row lock): may this waiter go now?"""
        bucket = RateLimitBucket.objects.get(name=self.config.name)
        return judge(self.config, self._state(bucket, dbclock.epoch(), ticket))

    def _attempt(self, holder: str, ticket: int | None) -> tuple[Verdict, int | None]:
        """One short write transaction: take a slot and a token when it is this request's turn;
        otherwise queue it (a ticket, once). Returns the verdict and the ticket (None when the
        request was granted)."""
        cfg = self.config
        with transaction.atomic():
            bucket = RateLimitBucket.objects.select_for_update().get(name=cfg.name)
            now = dbclock.epoch()  # after the row lock: the wait for it is not counted
            state = self._state(bucket, now, ticket)
            verdict = judge(cfg, state)
            if verdict.wait <= 0:
                verdict = self._take(holder, state, bucket)
            if verdict.wait > 0:
                if ticket is None:
                    ticket = self._new_ticket(holder, now)
                return verdict, ticket
            if ticket is not None:
                RateLimitTicket.objects.filter(pk=ticket).delete()
            return GO, None

    def _take(self, holder: str, state: State, bucket: RateLimitBucket) -> Verdict:
        cfg = self.config
        expires_at = state.now + cfg.lease_seconds
        for index in state.free:
            taken = (
                RateLimitSlot.objects.filter(bucket=cfg.name, index=index)
                .filter(Q(holder="") | Q(expires_at__lt=state.now))
                .update(holder=holder, expires_at=expires_at)
            )
            if taken:
                break
        else:  # renewed or taken since the look: re-check soon
            return Verdict(NEXT_IN_LINE_RECHECK, f"a free {cfg.name} slot", False)
        if cfg.per_hour > 0:
            RateLimitBucket.objects.filter(name=cfg.name).update(
                tokens=state.tokens - 1, refilled_at=state.now
            )
        return GO

    def _new_ticket(self, holder: str, now: float) -> int:
        cfg = self.config
        ticket = RateLimitTicket.objects.create(
            bucket=cfg.name, holder=holder, expires_at=now + cfg.lease_seconds
        ).pk
        if ticket % TICKET_SWEEP_EVERY == 0:  # now and then, tickets of dead waiters go
            RateLimitTicket.objects.filter(
                bucket=cfg.name, expires_at__lt=now - TICKET_GRACE_SECONDS
            ).delete()
        return ticket

    def _drop_ticket(self, ticket: int) -> None:
        try:
            RateLimitTicket.objects.filter(pk=ticket).delete()
        except DatabaseError:  # it expires by itself; don't hide the error being raised
            logger.warning("%s: could not drop ticket %s", self.config.name, ticket)

    def _release(self, holder: str) -> None:
        try:
            RateLimitSlot.objects.filter(bucket=self.config.name, holder=holder).update(
                holder="", expires_at=0
            )
        except DatabaseError:  # the lease ends by itself within LEASE_SECONDS
            logger.warning("%s: could not release slot of %s", self.config.name, holder)
