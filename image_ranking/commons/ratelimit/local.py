"""The limiter's interface inside one process only: used when the shared limiter is off
(`WIKIMEDIA_RATE_PER_HOUR=0`: benchmarks, tests, one-off tools)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from image_ranking.commons.ratelimit.waits import ToldToWait, bounded_wait, check_block, secs

logger = logging.getLogger(__name__)


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
        max_wait, over = bounded_wait(self.name, max_wait)
        wait = self._blocks.get(self.name, 0.0) - time.monotonic()
        if wait > 0:
            if max_wait is not None and wait > max_wait:
                raise over(wait, f"would wait {secs(wait)} s for Retry-After from Commons")
            time.sleep(wait)
        if not self.semaphore.acquire(timeout=max_wait):
            waited = max_wait or 0.0
            raise over(waited, f"waited {secs(waited)} s for a {self.name} slot of this process")
        try:
            yield
        except ToldToWait as told:
            self.block_for(told.seconds)  # before the slot is freed (see ToldToWait)
            raise
        finally:
            self.semaphore.release()

    def block_until(self, epoch: float) -> None:
        self.block_for(epoch - time.time())

    def block_for(self, seconds: float) -> None:
        check_block(self.name, seconds)
        with self._lock:
            until = time.monotonic() + seconds
            self._blocks[self.name] = max(self._blocks.get(self.name, 0.0), until)
        logger.warning("%s: server asked to wait %.1f s", self.name, seconds)


def reset_local_limits() -> None:
    """Forget in-process blocks (tests: one test's Retry-After must not leak into the next)."""
    with LocalLimiter._lock:
        LocalLimiter._blocks.clear()
