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
  database in the same transaction (`dbclock.epoch()`), never `time.time()` of the host, so
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

from django.conf import settings

from image_ranking.commons.ratelimit.leases import LEASE_SECONDS
from image_ranking.commons.ratelimit.local import LocalLimiter, reset_local_limits
from image_ranking.commons.ratelimit.shared import SharedLimiter
from image_ranking.commons.ratelimit.verdict import LimiterConfig, default_burst
from image_ranking.commons.ratelimit.waits import RateLimitTimeout, ToldToWait

__all__ = [
    "API_BUCKET",
    "MEDIA_BUCKET",
    "Limiter",
    "RateLimitTimeout",
    "ToldToWait",
    "api_limiter",
    "media_limiter",
    "reset_local_limits",
]

API_BUCKET = "commons_api"
MEDIA_BUCKET = "commons_media"

Limiter = SharedLimiter | LocalLimiter


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
