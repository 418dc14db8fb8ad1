"""How long a request may wait for the limiter, and what it says when it may not."""

from __future__ import annotations

import math
from collections.abc import Callable

from image_ranking.commons import budget


class ToldToWait(Exception):
    """Raised inside `slot()` when the server told every worker to wait `seconds` (a 429, a
    503 or maxlag with a usable Retry-After): the limiter records the block before it frees
    the slot, so no worker waiting for that slot goes in between."""

    def __init__(self, seconds: float, message: str = "") -> None:
        super().__init__(message or f"retry after {seconds:.0f} s")
        self.seconds = seconds


class RateLimitTimeout(Exception):
    """Waiting would take longer than the caller allows (e.g. a Retry-After of an hour)."""

    def __init__(self, bucket: str, wait: float, message: str | None = None) -> None:
        super().__init__(message or f"{bucket}: would wait {secs(wait)} s")
        self.bucket = bucket
        self.wait = wait


def bounded_wait(
    name: str, max_wait: float | None
) -> tuple[float | None, Callable[[float, str], Exception]]:
    """The longest wait allowed (the caller's `max_wait` or the work's time budget, whichever
    is shorter) and the error to raise, given the wait and what it was for, when a wait would
    exceed it."""
    left = budget.remaining()
    if left is not None and (max_wait is None or left < max_wait):
        return left, lambda wait, what: budget.BudgetExhausted(
            f"{what} (the POI's time budget had {secs(left)} s left)"
        )
    limit = "" if max_wait is None else f" (at most {secs(max_wait)} s allowed)"
    return max_wait, lambda wait, what: RateLimitTimeout(name, wait, f"{what}{limit}")


def check_block(name: str, seconds: float) -> None:
    """A block must be a finite, non-negative number of seconds (callers validate Retry-After;
    this is the last line of defence)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name}: refused to block for {seconds!r} s (not a finite wait >= 0)")


def secs(seconds: float) -> str:
    """Seconds for a message: tenths below 10 s (never a bare "0 s"), whole ones above."""
    return f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"
