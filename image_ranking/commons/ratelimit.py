"""Rate limits shared by every process and host, kept in the database.

Why in the database: Django-Q runs several worker processes, maybe on several machines; a
bucket in memory per process would multiply the real rate. Two limiters exist:

- `api_limiter()`: the Commons Action API. A token bucket of `WIKIMEDIA_RATE_PER_HOUR`
  requests per hour (the owner's budget, default 500) and ONE request in flight.
- `media_limiter()`: thumbnails and originals from upload.wikimedia.org: at most TWO requests
  in flight across all workers (Wikimedia's robot policy), no hourly budget.

Both honour `block_until(epoch)`: a 429/503/maxlag `Retry-After` seen by any worker pauses
every worker until then. Concurrency slots are leases (`RateLimitSlot.expires_at`), so a worker
killed mid-request frees its slot when the lease runs out.

The bucket never lets more than `rate` requests through in any one-hour window, burst
included: it holds at most `burst` tokens and refills at `rate - burst` per hour (a bucket
bound is burst + refill * window). Each take happens in one transaction under a row lock
(`SELECT ... FOR UPDATE` on PostgreSQL; on SQLite the settings' IMMEDIATE transactions take
the database write lock up front), so concurrent workers never hand out the same token.

Use `slot()` outside any `transaction.atomic()` block: inside one, the lease would stay
invisible to other workers until the outer commit. Times are Unix epochs, so hosts sharing a
database need synchronised clocks (NTP).

`WIKIMEDIA_RATE_PER_HOUR=0` switches the shared limiter off (benchmarks, one-off tools): the
limits then hold only inside this process (one/two requests in flight, Retry-After honoured).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest

from image_ranking.commons import budget
from image_ranking.models import RateLimitBucket, RateLimitSlot

logger = logging.getLogger(__name__)

API_BUCKET = "commons_api"
MEDIA_BUCKET = "commons_media"
POLL_SECONDS = 0.05
LOG_WAIT_SECONDS = 0.5


class RateLimitTimeout(Exception):
    """Waiting would take longer than the caller allows (e.g. a Retry-After of an hour)."""

    def __init__(self, bucket: str, wait: float) -> None:
        super().__init__(f"{bucket}: would have to wait {wait:.0f} s")
        self.bucket = bucket
        self.wait = wait


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


class SharedLimiter:
    """A token bucket + leased concurrency slots, both rows in the database."""

    def __init__(self, config: LimiterConfig) -> None:
        self.config = config
        self.holder = f"{socket.gethostname()}:{os.getpid()}"

    # --- public ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def slot(self, max_wait: float | None = None) -> Iterator[None]:
        """Wait for a free slot and a token (and for any block to pass), then hold the slot.

        Raises RateLimitTimeout when the wait would exceed `max_wait` seconds, and
        BudgetExhausted when it would overrun the current work's time budget.
        """
        started = time.monotonic()
        max_wait, over = _bounded_wait(self.config.name, max_wait)
        deadline = None if max_wait is None else started + max_wait
        holder = f"{self.holder}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"
        index = self._acquire(holder, deadline, over)
        try:
            waited = time.monotonic() - started
            if waited >= LOG_WAIT_SECONDS:
                logger.info(
                    "%s: request waited %.1f s for the rate limit", self.config.name, waited
                )
            yield
        finally:
            self._release(index, holder)

    def block_until(self, epoch: float) -> None:
        """No worker may start a request of this bucket before `epoch` (Unix seconds)."""
        self._ensure_rows()
        RateLimitBucket.objects.filter(name=self.config.name).update(
            blocked_until=Greatest(F("blocked_until"), epoch)
        )
        logger.warning(
            "%s: server asked to wait; all workers pause for %.1f s",
            self.config.name,
            epoch - time.time(),
        )

    # --- internals -------------------------------------------------------------------------
    def _ensure_rows(self) -> None:
        cfg = self.config
        if not RateLimitBucket.objects.filter(name=cfg.name).exists():
            with contextlib.suppress(IntegrityError), transaction.atomic():
                RateLimitBucket.objects.create(
                    name=cfg.name, tokens=cfg.burst, refilled_at=time.time()
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
        deadline: float | None,
        over: Callable[[float], Exception] | None = None,
    ) -> int:
        """Lease a slot, then take a token while holding it; returns the slot index.

        The token is taken only once the slot is held, so requests queued behind a slow one
        cannot all go out at once when it finishes.
        """
        self._ensure_rows()
        while True:
            wait, index = self._try_acquire(holder)
            if wait <= 0:
                return index
            if deadline is not None and time.monotonic() + wait > deadline:
                if index >= 0:
                    self._release(index, holder)
                raise (over or (lambda w: RateLimitTimeout(self.config.name, w)))(wait)
            if index >= 0 and wait > self.config.lease_seconds / 2:
                # A long block (Retry-After): don't sit on the slot while the lease runs out.
                self._release(index, holder)
                index = -1
            time.sleep(min(wait, 1.0) if index < 0 else wait)

    def _try_acquire(self, holder: str) -> tuple[float, int]:
        """One transaction: (seconds to wait, slot index or -1). wait == 0 means granted."""
        cfg = self.config
        with transaction.atomic():
            now = time.time()
            bucket = RateLimitBucket.objects.select_for_update().get(name=cfg.name)
            if bucket.blocked_until > now:
                mine = self._mine(holder)
                return bucket.blocked_until - now, mine
            index = self._mine(holder)
            if index < 0:
                free = (
                    RateLimitSlot.objects.select_for_update()
                    .filter(bucket=cfg.name, index__lt=cfg.concurrency)
                    .filter(Q(expires_at__lt=now) | Q(holder=""))
                    .order_by("index")
                    .first()
                )
                if free is None:
                    return POLL_SECONDS, -1
                free.holder = holder
                free.expires_at = now + cfg.lease_seconds
                free.save(update_fields=["holder", "expires_at"])
                index = free.index
            if cfg.per_hour <= 0:
                return 0.0, index
            refill_per_second = max(cfg.per_hour - cfg.burst, 1) / 3600.0
            tokens = min(cfg.burst, bucket.tokens + (now - bucket.refilled_at) * refill_per_second)
            if tokens < 1:
                RateLimitBucket.objects.filter(name=cfg.name).update(tokens=tokens, refilled_at=now)
                return (1 - tokens) / refill_per_second, index
            RateLimitBucket.objects.filter(name=cfg.name).update(tokens=tokens - 1, refilled_at=now)
            return 0.0, index

    def _mine(self, holder: str) -> int:
        slot = RateLimitSlot.objects.filter(bucket=self.config.name, holder=holder).first()
        return -1 if slot is None else slot.index

    def _release(self, index: int, holder: str) -> None:
        RateLimitSlot.objects.filter(bucket=self.config.name, index=index, holder=holder).update(
            holder="", expires_at=0
        )


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
        wait = self._blocks.get(self.name, 0.0) - time.time()
        if wait > 0:
            if max_wait is not None and wait > max_wait:
                raise over(wait)
            time.sleep(wait)
        if not self.semaphore.acquire(timeout=max_wait):
            raise over(max_wait or 0.0)
        try:
            yield
        finally:
            self.semaphore.release()

    def block_until(self, epoch: float) -> None:
        with self._lock:
            self._blocks[self.name] = max(self._blocks.get(self.name, 0.0), epoch)
        logger.warning("%s: server asked to wait %.1f s", self.name, epoch - time.time())


Limiter = SharedLimiter | LocalLimiter


def _bounded_wait(
    name: str, max_wait: float | None
) -> tuple[float | None, Callable[[float], Exception]]:
    """The longest wait allowed (the caller's `max_wait` or the work's time budget, whichever
    is shorter) and the error to raise when a wait would exceed it."""
    left = budget.remaining()
    if left is not None and (max_wait is None or left < max_wait):
        return left, lambda wait: budget.BudgetExhausted(
            f"waiting for the {name} rate limit ({wait:.0f} s) would overrun the POI's time budget"
        )
    return max_wait, lambda wait: RateLimitTimeout(name, wait)


def reset_local_limits() -> None:
    """Forget in-process blocks (tests: one test's Retry-After must not leak into the next)."""
    with LocalLimiter._lock:
        LocalLimiter._blocks.clear()


def _shared_enabled() -> bool:
    return settings.WIKIMEDIA_RATE_PER_HOUR > 0


def api_limiter(lease_seconds: float = 120.0) -> Limiter:
    """The Commons Action API limit: the hourly budget, one request in flight."""
    if not _shared_enabled():
        return LocalLimiter(API_BUCKET, 1)
    per_hour = float(settings.WIKIMEDIA_RATE_PER_HOUR)
    return SharedLimiter(
        LimiterConfig(API_BUCKET, per_hour, default_burst(per_hour), 1, lease_seconds)
    )


def media_limiter(lease_seconds: float = 120.0) -> Limiter:
    """Thumbnail and original downloads: at most two in flight across all workers."""
    if not _shared_enabled():
        return LocalLimiter(MEDIA_BUCKET, 2)
    return SharedLimiter(LimiterConfig(MEDIA_BUCKET, 0, 1, 2, lease_seconds))
