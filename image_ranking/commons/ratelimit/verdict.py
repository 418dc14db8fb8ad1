"""The shared limiter's decision, from one look at the database: go now, or wait how long
and for what. Pure functions of the configuration and the state: no database here."""

from __future__ import annotations

from dataclasses import dataclass

NEXT_IN_LINE_RECHECK = 0.1  # read-only re-check of the waiter a freed slot would go to
QUEUED_RECHECK = 0.25  # read-only re-check of waiters further back


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
class State:
    """What one look at the database says (times on the database's clock)."""

    now: float
    blocked_until: float
    tokens: float  # refilled up to `now`
    free: tuple[int, ...]  # slot indexes free (or with an expired lease)
    held: tuple[tuple[float, str], ...]  # (lease end, holder) of the slots in use
    ahead: int  # live tickets ahead of this waiter (all live tickets for a newcomer)


@dataclass(frozen=True)
class Verdict:
    """How long to wait before trying again, and for what (0 = go now)."""

    wait: float
    what: str  # "the next commons_api token", for messages and logs
    known: bool  # the wait's length is known (a block, a token); else a re-check (a slot)


GO = Verdict(0.0, "", True)


def judge(cfg: LimiterConfig, state: State) -> Verdict:
    """The verdict for one waiter from one look at the database."""
    if state.blocked_until > state.now:
        return Verdict(state.blocked_until - state.now, "Retry-After from Commons", True)
    if state.ahead >= len(state.free):
        queued = f", {state.ahead} earlier requests queued" if state.ahead else ""
        recheck = NEXT_IN_LINE_RECHECK if state.ahead < cfg.concurrency else QUEUED_RECHECK
        if state.held and not state.free:
            who = ", ".join(sorted({host_pid(holder) for _, holder in state.held}))
            noun = "slot" if cfg.concurrency == 1 else "slots"
            lease_end = min(end for end, _ in state.held) - state.now
            recheck = min(recheck, max(0.01, lease_end))
            return Verdict(recheck, f"the {cfg.name} {noun} held by {who}{queued}", False)
        return Verdict(recheck, f"a {cfg.name} slot{queued}", False)
    if cfg.per_hour > 0 and state.tokens < 1:
        wait = (1 - state.tokens) / refill_per_second(cfg)
        return Verdict(wait, f"the next {cfg.name} token", True)
    return GO


def refill_per_second(cfg: LimiterConfig) -> float:
    return max(cfg.per_hour - cfg.burst, 1) / 3600.0


def host_pid(holder: str) -> str:
    return ":".join(holder.split(":")[:2])
