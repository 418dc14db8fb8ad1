"""The time budget of the work at hand (one POI), honoured by every wait at the network edge.

Django-Q kills a task that runs past `Q_TIMEOUT` (its TimeoutException is a SystemExit that
no `except Exception` sees), so the per-POI function works within a budget below it: the rate
limiter and the downloads ask `remaining()` and give up with `BudgetExhausted` in time for the
POI to be recorded with the reason. Outside a budget (tools, tests) nothing is limited.

The budget lives in a context variable: each worker process and thread has its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("image_ranking_deadline", default=None)


class BudgetExhausted(Exception):
    """The work's time budget ran out (or would, before what was asked could finish)."""


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Run the block within `seconds` (nested budgets keep the earlier deadline)."""
    deadline = time.monotonic() + max(0.0, seconds)
    outer = _deadline.get()
    token = _deadline.set(deadline if outer is None else min(outer, deadline))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left in the current budget (never negative), or None without a budget."""
    deadline = _deadline.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def cap(seconds: float) -> float:
    """`seconds`, shortened to what the budget has left."""
    left = remaining()
    return seconds if left is None else min(seconds, left)
