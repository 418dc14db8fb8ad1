"""Now on the DATABASE's clock, for timestamps that several hosts write and compare.

Run and item timestamps (`RankingRun.created_at/started_at/finished_at/swept_at`,
`RankingRunItem.started_at/finished_at`) are written with Django's `Now()` in the statement
itself, and the sweep compares them with `now()` below, so a host whose clock is minutes off
neither declares a live item lost nor notices a lost one late. Django's `Now()` is
PostgreSQL's `STATEMENT_TIMESTAMP()` and SQLite's `STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')` (UTC,
milliseconds). SQLite keeps datetimes as text, and that text sorts like the text Django
writes for a Python datetime and computes for `Now() - timedelta` (`YYYY-MM-DD
HH:MM:SS[.ffffff]`), so they all compare as the times they are.

`now()` reads the clock with the one per-vendor query of the rate limiter
(`ratelimit.database_time()`). `estimate()` costs no query: this host's clock corrected by
the offset measured at this process's last `now()` (none yet: this host's clock), good for
what is only displayed, such as the dashboard's ETA.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from image_ranking.commons.ratelimit import database_time

_offset = timedelta(0)  # database clock minus this host's, at the last now()


def now() -> datetime:
    """Now on the database's clock, as an aware UTC datetime (one query)."""
    global _offset
    db_now = datetime.fromtimestamp(database_time(), tz=UTC)
    _offset = db_now - timezone.now()
    return db_now


def estimate() -> datetime:
    """The database's clock as last measured by this process, without a query."""
    return timezone.now() + _offset
