"""Rate limits shared by every process and host, kept in the database.

Why in the database: Django-Q runs several worker processes, maybe on several machines; a
bucket in memory per process would multiply the real rate. Two limiters exist:

- `api_limiter()`: the Commons Action API. A token bucket of `WIKIMEDIA_RATE_PER_HOUR`
  requests per hour (the owner's budget, default 500) and ONE request in flight.
- `media_limiter()`: thumbnails and originals from upload.wikimedia.org: at most TWO requests
  in flight across all workers (Wikimedia's robot policy), no hourly budget.

Both honour `block_for(seconds)` / `block_until(epoch)`: a 429/503/maxlag `Retry-After` seen by
any worker pauses every worker until then.

How a request gets its turn (`SharedLimiter.slot()`):

- **Leases that match what they guard.** A slot is a lease of `LEASE_SECONDS` (10 s), renewed
  every `LEASE_SECONDS / 5` by one heartbeat thread per process (`_LeaseKeeper`) for as long
  as the request is in flight, whatever the body's speed. A SIGKILLed worker's heartbeat stops
  with it, so its slot frees itself within one lease; a slow but live download keeps its own.
- **First come, first served.** A request that cannot go at once takes a ticket (a
  `RateLimitTicket` row; its id is its place in the queue) and may go only when fewer live
  tickets are ahead of it than slots are free. Tickets are leases too (renewed by the same
  heartbeat), so a dead waiter stops holding up the queue within seconds.
- **Computed waits, few writes.** A waiter sleeps as long as it knows it must (until the block
  ends, until the next token) and otherwise re-checks with a READ (no write lock): every
  0.1 s when it is next in line for a slot, every 0.25 s further back. Only when a read says
  it may go does it run a write transaction (take the slot and the token, drop the ticket).
  Writes per request: a ticket (only when it has to wait), the grant, the release, plus one
  heartbeat transaction per process every 2 s.
- **The database's clock.** Refills, blocks, leases and tickets are Unix seconds read from the
  database in the same transaction (`database_time()`), never `time.time()` of the host, so
  hosts with skewed clocks still agree on them. `block_until(epoch)` takes an epoch of THIS
  host's clock (callers compute `time.time() + retry_after`) and turns it into a duration.

The bucket never lets more than `rate` requests through in any one-hour window, burst
included: it holds at most `burst` tokens and refills at `rate - burst` per hour (a bucket
bound is burst + refill * window). Each grant happens in one short transaction under a row
lock (`SELECT ... FOR UPDATE` on PostgreSQL; on SQLite the settings' IMMEDIATE transactions
take the database write lock up front), so concurrent workers never hand out the same token
or slot.

Use `slot()` outside any `transaction.atomic()` block: inside one, the lease would stay
invisible to other workers until the outer commit.

Known limit: a worker frozen for longer than a lease (SIGSTOP, a swapped-out host) loses its
slot to another while its request may still be open; the heartbeat logs a warning then.

`WIKIMEDIA_RATE_PER_HOUR=0` switches the shared limiter off (benchmarks, one-off tools): the
limits then hold only inside this process (one/two requests in flight, Retry-After honoured).
"""

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
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, IntegrityError, close_old_connections, connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest

from image_ranking.commons import budget
from image_ranking.models import RateLimitBucket, RateLimitSlot, RateLimitTicket

logger = logging.getLogger(__name__)

API_BUCKET = "commons_api"
MEDIA_BUCKET = "commons_media"
LEASE_SECONDS = 10.0  # slots and tickets; a dead worker's lease ends within this
BEATS_PER_LEASE = 5  # heartbeats per lease: four may fail (a busy database) before it ends
NEXT_IN_LINE_RECHECK = 0.1  # read-only re-check of the waiter a freed slot would go to
QUEUED_RECHECK = 0.25  # read-only re-check of waiters further back
TICKET_GRACE_SECONDS = 60.0  # expired tickets are deleted after this ...
TICKET_SWEEP_EVERY = 16  # ... by every 16th new ticket
LOG_WAIT_SECONDS = 0.5


class RateLimitTimeout(Exception):
    """Waiting would take longer than the caller allows (e.g. a Retry-After of an hour)."""

    def __init__(self, bucket: str, wait: float, message: str | None = None) -> None:
        super().__init__(message or f"{bucket}: would wait {_secs(wait)} s")
        self.bucket = bucket
        self.wait = wait


def database_time() -> float:
    """Now, as Unix seconds with sub-second resolution, on the DATABASE's clock.

    Why: the bucket, blocks, leases and tickets are compared by every host; with each host's
    own clock, one 2 min ahead would see every lease as expired. One SELECT per transaction,
    phrased per database because there is no portable sub-second "now" in SQL:

    - PostgreSQL: `EXTRACT(EPOCH FROM clock_timestamp())`, the server's clock at this
      statement (`now()` / `CURRENT_TIMESTAMP` are the transaction's start, which lags behind
      a row-lock wait).
    - SQLite: `(julianday('now') - 2440587.5) * 86400` (millisecond resolution;
      `CURRENT_TIMESTAMP` has whole seconds only). SQLite runs inside each process, so this is
      the kernel clock of the one host that can share a SQLite file (WAL needs shared memory,
      so never several hosts): every process on it agrees, and a patched `time.time()` in
      Python does not change it.
    - MySQL/MariaDB: `UNIX_TIMESTAMP(NOW(6))`.
    - anything else: this host's `time.time()` (no better portable source).
    """
    sql = {
        "postgresql": "SELECT EXTRACT(EPOCH FROM clock_timestamp())",
        "sqlite": "SELECT (julianday('now') - 2440587.5) * 86400.0",
        "mysql": "SELECT UNIX_TIMESTAMP(NOW(6))",
    }.get(connection.vendor)
    if sql is None:
        return time.time()
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return float(cursor.fetchone()[0])


@dataclass(frozen=True)
class LimiterConfig:
    name: str
    per_hour: float  # 0 = no hourly budget
    burst: int
    concurrency: int
    lease_seconds: float


def default_burst(per_hour: float) -> int:
    """A small burst: 1% of the hourly budget, between 1 and 5 requests."""
    return int(max(1, min(5, per_hour // 100)))


@dataclass(frozen=True)
class _State:
    """What one look at the database says (times on the database's clock)."""

    now: float
    blocked_until: float
    tokens: float  # refilled up to `now`
    free: tuple[int, ...]  # slot indexes free (or with an expired lease)
    held: tuple[tuple[float, str], ...]  # (lease end, holder) of the slots in use
    ahead: int  # live tickets ahead of this waiter (all live tickets for a newcomer)


@dataclass(frozen=True)
class _Verdict:
    """How long to wait before trying again, and for what (0 = go now)."""

    wait: float
    what: str  # "the next commons_api token", for messages and logs
    known: bool  # the wait's length is known (a block, a token); else a re-check (a slot)


GO = _Verdict(0.0, "", True)


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
        max_wait, over = _bounded_wait(self.config.name, max_wait)
        deadline = None if max_wait is None else started + max_wait
        holder = f"{self.holder}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"
        what = self._acquire(holder, started, deadline, over)
        _keeper.add_slot(holder, self.config.lease_seconds)
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
        finally:
            _keeper.drop_slot(holder)
            self._release(holder)

    def block_until(self, epoch: float) -> None:
        """No worker may start a request of this bucket before `epoch` (THIS host's clock)."""
        self.block_for(epoch - time.time())

    def block_for(self, seconds: float) -> None:
        """No worker may start a request of this bucket for `seconds` from now.

        Refuses (ValueError) a non-finite or negative duration: stored, an inf or nan would
        stop every worker until someone edited the row by hand."""
        _check_block(self.config.name, seconds)
        self._ensure_rows()
        with transaction.atomic():
            until = database_time() + seconds
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
                    name=cfg.name, tokens=cfg.burst, refilled_at=database_time()
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
                _keeper.add_ticket(ticket, self.config.lease_seconds)
            while verdict.wait > 0:
                what = verdict.what
                now = time.monotonic()
                left = math.inf if deadline is None else deadline - now
                if verdict.known and verdict.wait > left and verdict.wait >= 1.0:
                    raise over(verdict.wait, f"would wait {_secs(verdict.wait)} s for {what}")
                if left <= 0:
                    raise over(now - started, f"waited {_secs(now - started)} s for {what}")
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
                _keeper.drop_ticket(renewed)
            if ticket is not None and not granted:
                self._drop_ticket(ticket)

    def _state(self, bucket: RateLimitBucket, now: float, ticket: int | None) -> _State:
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
            tokens = min(cfg.burst, bucket.tokens + elapsed * _refill_per_second(cfg))
        return _State(
            now, bucket.blocked_until, tokens, tuple(sorted(free)), tuple(held), queue.count()
        )

    def _look(self, ticket: int | None) -> _Verdict:
        """A read-only look (no write lock, no row lock): may this waiter go now?"""
        bucket = RateLimitBucket.objects.get(name=self.config.name)
        return _judge(self.config, self._state(bucket, database_time(), ticket))

    def _attempt(self, holder: str, ticket: int | None) -> tuple[_Verdict, int | None]:
        """One short write transaction: take a slot and a token when it is this request's turn;
        otherwise queue it (a ticket, once). Returns the verdict and the ticket (None when the
        request was granted)."""
        cfg = self.config
        with transaction.atomic():
            bucket = RateLimitBucket.objects.select_for_update().get(name=cfg.name)
            now = database_time()  # after the row lock: the wait for it is not counted
            state = self._state(bucket, now, ticket)
            verdict = _judge(cfg, state)
            if verdict.wait <= 0:
                verdict = self._take(holder, state, bucket)
            if verdict.wait > 0:
                if ticket is None:
                    ticket = self._new_ticket(holder, now)
                return verdict, ticket
            if ticket is not None:
                RateLimitTicket.objects.filter(pk=ticket).delete()
            return GO, None

    def _take(self, holder: str, state: _State, bucket: RateLimitBucket) -> _Verdict:
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
            return _Verdict(NEXT_IN_LINE_RECHECK, f"a free {cfg.name} slot", False)
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


def _judge(cfg: LimiterConfig, state: _State) -> _Verdict:
    """The verdict for one waiter from one look at the database."""
    if state.blocked_until > state.now:
        return _Verdict(state.blocked_until - state.now, "Retry-After from Commons", True)
    if state.ahead >= len(state.free):
        queued = f", {state.ahead} earlier requests queued" if state.ahead else ""
        recheck = NEXT_IN_LINE_RECHECK if state.ahead < cfg.concurrency else QUEUED_RECHECK
        if state.held and not state.free:
            who = ", ".join(sorted({_host_pid(holder) for _, holder in state.held}))
            noun = "slot" if cfg.concurrency == 1 else "slots"
            lease_end = min(end for end, _ in state.held) - state.now
            recheck = min(recheck, max(0.01, lease_end))
            return _Verdict(recheck, f"the {cfg.name} {noun} held by {who}{queued}", False)
        return _Verdict(recheck, f"a {cfg.name} slot{queued}", False)
    if cfg.per_hour > 0 and state.tokens < 1:
        wait = (1 - state.tokens) / _refill_per_second(cfg)
        return _Verdict(wait, f"the next {cfg.name} token", True)
    return GO


def _refill_per_second(cfg: LimiterConfig) -> float:
    return max(cfg.per_hour - cfg.burst, 1) / 3600.0


def _host_pid(holder: str) -> str:
    return ":".join(holder.split(":")[:2])


def _secs(seconds: float) -> str:
    """Seconds for a message: tenths below 10 s (never a bare "0 s"), whole ones above."""
    return f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"


class _LeaseKeeper:
    """One daemon thread per process renewing the leases of its slots and tickets.

    Why a thread: the renewal must not depend on how fast a body arrives or how long a waiter
    sleeps; it runs beside the request and dies with the process, which is exactly when its
    leases should end. All of a process's leases are renewed in one short transaction.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, float] = {}  # holder -> lease seconds
        self._tickets: dict[int, float] = {}  # ticket id -> lease seconds
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._wake = threading.Event()  # a new lease: re-compute the beat (no renewal)

    def add_slot(self, holder: str, lease: float) -> None:
        with self._lock:
            self._slots[holder] = lease
            self._start()
        self._wake.set()

    def drop_slot(self, holder: str) -> None:
        with self._lock:
            self._slots.pop(holder, None)

    def add_ticket(self, ticket: int, lease: float) -> None:
        with self._lock:
            self._tickets[ticket] = lease
            self._start()
        self._wake.set()

    def drop_ticket(self, ticket: int) -> None:
        with self._lock:
            self._tickets.pop(ticket, None)

    def _start(self) -> None:
        """Start the thread (again after a fork: threads do not survive one)."""
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="ratelimit-leases", daemon=True)
        self._thread.start()

    def _beat(self) -> float:
        with self._lock:
            leases = [*self._slots.values(), *self._tickets.values()]
        return max(0.05, min(leases, default=LEASE_SECONDS) / BEATS_PER_LEASE)

    def _run(self) -> None:
        last = time.monotonic()
        while True:
            due = last + self._beat()  # a shorter lease added meanwhile brings it forward
            now = time.monotonic()
            if now < due:
                self._wake.wait(due - now)
                self._wake.clear()
                continue
            last = now
            try:
                self.renew()
            except Exception as exc:  # never let the heartbeat die; the next beat tries again
                with self._lock:
                    pending = bool(self._slots or self._tickets)
                if pending:  # else the leases ended meanwhile: nothing was lost
                    logger.warning("rate limit heartbeat failed: %s", exc)
                with contextlib.suppress(Exception):
                    connection.close()

    def renew(self) -> None:
        with self._lock:
            slots, tickets = dict(self._slots), dict(self._tickets)
        if not slots and not tickets:
            return
        close_old_connections()
        with transaction.atomic():
            now = database_time()
            renewed = 0
            for lease in set(slots.values()):
                holders = [h for h, seconds in slots.items() if seconds == lease]
                renewed += RateLimitSlot.objects.filter(holder__in=holders).update(
                    expires_at=now + lease
                )
            for lease in set(tickets.values()):
                ids = [t for t, seconds in tickets.items() if seconds == lease]
                RateLimitTicket.objects.filter(pk__in=ids).update(expires_at=now + lease)
        if renewed < len(slots):
            with self._lock:
                lost = [h for h in slots if h in self._slots]
            if len(lost) > renewed:
                logger.warning("rate limit: a slot lease ran out while its request was open")


_keeper = _LeaseKeeper()


class LocalLimiter:
    """The same interface inside one process only: used when the shared limiter is off."""

    _blocks: dict[str, float] = {}
    _semaphores: dict[str, threading.BoundedSemaphore] = {}
    _lock = threading.Lock()

    def __init__(self, name: str, concurrency: int) -> None:
        self.name = name
        with self._lock:
            self._semaphores.setdefault(name, threading.BoundedSemaphore(concurrency))
            self.semaphore = self._semaphores[name]

    @contextlib.contextmanager
    def slot(self, max_wait: float | None = None) -> Iterator[None]:
        max_wait, over = _bounded_wait(self.name, max_wait)
        wait = self._blocks.get(self.name, 0.0) - time.monotonic()
        if wait > 0:
            if max_wait is not None and wait > max_wait:
                raise over(wait, f"would wait {_secs(wait)} s for Retry-After from Commons")
            time.sleep(wait)
        if not self.semaphore.acquire(timeout=max_wait):
            waited = max_wait or 0.0
            raise over(waited, f"waited {_secs(waited)} s for a {self.name} slot of this process")
        try:
            yield
        finally:
            self.semaphore.release()

    def block_until(self, epoch: float) -> None:
        self.block_for(epoch - time.time())

    def block_for(self, seconds: float) -> None:
        _check_block(self.name, seconds)
        with self._lock:
            until = time.monotonic() + seconds
            self._blocks[self.name] = max(self._blocks.get(self.name, 0.0), until)
        logger.warning("%s: server asked to wait %.1f s", self.name, seconds)


Limiter = SharedLimiter | LocalLimiter


def _check_block(name: str, seconds: float) -> None:
    """A block must be a finite, non-negative number of seconds (callers validate Retry-After;
    this is the last line of defence)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name}: refused to block for {seconds!r} s (not a finite wait >= 0)")


def _bounded_wait(
    name: str, max_wait: float | None
) -> tuple[float | None, Callable[[float, str], Exception]]:
    """The longest wait allowed (the caller's `max_wait` or the work's time budget, whichever
    is shorter) and the error to raise, given the wait and what it was for, when a wait would
    exceed it."""
    left = budget.remaining()
    if left is not None and (max_wait is None or left < max_wait):
        return left, lambda wait, what: budget.BudgetExhausted(
            f"{what} (the POI's time budget had {_secs(left)} s left)"
        )
    limit = "" if max_wait is None else f" (at most {_secs(max_wait)} s allowed)"
    return max_wait, lambda wait, what: RateLimitTimeout(name, wait, f"{what}{limit}")


def reset_local_limits() -> None:
    """Forget in-process blocks (tests: one test's Retry-After must not leak into the next)."""
    with LocalLimiter._lock:
        LocalLimiter._blocks.clear()


def _shared_enabled() -> bool:
    return settings.WIKIMEDIA_RATE_PER_HOUR > 0


def api_limiter(lease_seconds: float | None = None) -> Limiter:
    """The Commons Action API limit: the hourly budget, one request in flight."""
    if not _shared_enabled():
        return LocalLimiter(API_BUCKET, 1)
    per_hour = float(settings.WIKIMEDIA_RATE_PER_HOUR)
    lease = LEASE_SECONDS if lease_seconds is None else lease_seconds
    return SharedLimiter(LimiterConfig(API_BUCKET, per_hour, default_burst(per_hour), 1, lease))


def media_limiter(lease_seconds: float | None = None) -> Limiter:
    """Thumbnail and original downloads: at most two in flight across all workers."""
    if not _shared_enabled():
        return LocalLimiter(MEDIA_BUCKET, 2)
    lease = LEASE_SECONDS if lease_seconds is None else lease_seconds
    return SharedLimiter(LimiterConfig(MEDIA_BUCKET, 0, 1, 2, lease))
