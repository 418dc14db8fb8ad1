"""Now on the DATABASE's clock, for timestamps that several hosts write and compare.

Run and item timestamps (`RankingRun.created_at/started_at/finished_at/swept_at`,
`RankingRunItem.started_at/finished_at`) are written with Django's `Now()` in the statement
itself, and the sweep compares them with `now()` below, so a host whose clock is minutes off
neither declares a live item lost nor notices a lost one late. Django's `Now()` is
PostgreSQL's `STATEMENT_TIMESTAMP()` and SQLite's `STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')` (UTC,
milliseconds). SQLite keeps datetimes as text, and that text sorts like the text Django
writes for a Python datetime and computes for `Now() - timedelta` (`YYYY-MM-DD
HH:MM:SS[.ffffff]`), so they all compare as the times they are.

`epoch()` reads the clock with one per-vendor query (the rate limiter's refills, blocks and
leases use it too); `now()` is the same moment as a datetime. `estimate()` costs no query:
this host's clock corrected by the offset measured at this process's last `now()` (none yet:
this host's clock), good for what is only displayed, such as the dashboard's ETA.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.utils import timezone

_offset = timedelta(0)  # database clock minus this host's, at the last now()


def now() -> datetime:
    """Now on the database's clock, as an aware UTC datetime (one query)."""
    global _offset
    db_now = datetime.fromtimestamp(epoch(), tz=UTC)
    _offset = db_now - timezone.now()
    return db_now


def estimate() -> datetime:
    """The database's clock as last measured by this process, without a query."""
    return timezone.now() + _offset


def epoch() -> float:
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
