"""The shared rate limiter under a queue of waiting workers, with the old limiter as baseline.

8 worker processes share one database (a WAL SQLite file, and a fresh PostgreSQL database
when TEST_POSTGRES_URL is set, e.g. under scripts/with_postgres.sh) and take API slots as fast
as the bucket allows, for `--seconds` each run. Each "request" holds its slot 20 ms. Every
worker gives up a wait after `--max-wait`, which defaults to the production ratio scaled to
the bench's rate: 120 s (CommonsClient.max_wait) at 500/h is 16.7 token intervals.

Reported per database, new limiter and baseline side by side with the ratio:
- rate_limited: waits given up (RateLimitTimeout); must be 0 at the configured rate;
- write txns/s: write transactions per second over all processes (heartbeat threads
  included): each one that wrote, took a row lock (SELECT ... FOR UPDATE) or, on SQLite, began
  IMMEDIATE (the database's write lock, whether it then writes or not); write stmts/s: the
  INSERT/UPDATE/DELETE statements among them;
- the spread of wait times (p50, p90, max) and the requests granted.

Baseline: the limiter as it was before first-come-first-served (commit cfea87e), loaded from
git: every waiter retries a write transaction every 50 ms and whoever polls first wins.

Run: .venv/bin/python bench/limiter.py [--seconds 10] [--rate 18000] [--workers 8]
     scripts/with_postgres.sh .venv/bin/python bench/limiter.py   (adds PostgreSQL)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE_COMMIT = "cfea87e"
HOLD_SECONDS = 0.02


# --- one worker process --------------------------------------------------------------------
def load_baseline():
    """The old image_ranking/commons/ratelimit.py, as a module, from git history."""
    source = subprocess.run(
        ["git", "show", f"{BASELINE_COMMIT}:image_ranking/commons/ratelimit.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    spec = importlib.util.spec_from_loader("ratelimit_baseline", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, "ratelimit_baseline.py", "exec"), module.__dict__)
    return module


class StatementCounter:
    """Counts write statements and write transactions on every connection of this process
    (all threads): a transaction counts when it wrote, locked a row (FOR UPDATE) or, on
    SQLite, began IMMEDIATE (which takes the database's write lock even if it then writes
    nothing); a write statement outside a transaction is one on its own."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writes = 0
        self.transactions = 0

    def __call__(self, execute, sql, params, many, context):
        text = sql.lstrip().upper()
        conn = context["connection"]
        write = text.startswith(("INSERT", "UPDATE", "DELETE"))
        locking = write or text.startswith("BEGIN IMMEDIATE") or "FOR UPDATE" in text
        with self.lock:
            self.writes += write
            if locking and not conn.in_atomic_block and not text.startswith("BEGIN"):
                self.transactions += 1
            elif locking:
                conn.bench_locked = True
        return execute(sql, params, many, context)

    def install(self) -> None:
        from django.db import connection
        from django.db.backends.base.base import BaseDatabaseWrapper
        from django.db.backends.signals import connection_created

        counter = self
        commit, rollback = BaseDatabaseWrapper.commit, BaseDatabaseWrapper.rollback

        def ended(conn) -> None:
            if getattr(conn, "bench_locked", False):
                conn.bench_locked = False
                with counter.lock:
                    counter.transactions += 1

        def counted_commit(conn):
            ended(conn)
            return commit(conn)

        def counted_rollback(conn):
            ended(conn)
            return rollback(conn)

        BaseDatabaseWrapper.commit = counted_commit
        BaseDatabaseWrapper.rollback = counted_rollback

        def hook(sender, connection, **kwargs):
            if self not in connection.execute_wrappers:
                connection.execute_wrappers.append(self)

        connection_created.connect(hook, weak=False)
        connection.execute_wrappers.append(self)


def worker(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from image_ranking.commons import ratelimit

    module = load_baseline() if args.baseline else ratelimit
    counter = StatementCounter()
    counter.install()
    limiter = module.api_limiter()
    waits, failures = [], 0
    time.sleep(max(0.0, args.start - time.time()))
    while time.time() < args.stop:
        asked = time.monotonic()
        try:
            with limiter.slot(max_wait=args.max_wait):
                waits.append(time.monotonic() - asked)
                time.sleep(HOLD_SECONDS)
        except module.RateLimitTimeout:
            failures += 1
    elapsed = time.time() - args.start
    print(
        json.dumps(
            {
                "waits": waits,
                "failures": failures,
                "writes": counter.writes,
                "transactions": counter.transactions,
                "elapsed": elapsed,
            }
        ),
        flush=True,
    )


# --- the driver ----------------------------------------------------------------------------
def run(db_env: dict[str, str], baseline: bool, args: argparse.Namespace) -> dict:
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SQLITE_PATH"}},
        **db_env,
        "DJANGO_SETTINGS_MODULE": "city_wiki.settings",
        "DJANGO_DEBUG": os.environ.get("DJANGO_DEBUG", "1"),  # a development tool
        "WIKIMEDIA_RATE_PER_HOUR": str(args.rate),
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "ERROR",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    start = time.time() + 3.0
    command = [sys.executable, __file__, "--worker", f"--start={start}"]
    command += [f"--stop={start + args.seconds}", f"--max-wait={args.max_wait}"]
    command += ["--baseline"] if baseline else []
    procs = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(args.workers)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=args.seconds + 120)
        results.append(json.loads(out.strip().splitlines()[-1]))
    waits = sorted(w for r in results for w in r["waits"])
    elapsed = max(r["elapsed"] for r in results)
    per_worker = [len(r["waits"]) for r in results]
    return {
        "rate_limited": sum(r["failures"] for r in results),
        "write txns/s": sum(r["transactions"] for r in results) / elapsed,
        "write stmts/s": sum(r["writes"] for r in results) / elapsed,
        "requests": len(waits),
        "requests/s": len(waits) / elapsed,
        "fewest per worker": min(per_worker),
        "wait p50 s": statistics.median(waits) if waits else 0.0,
        "wait p90 s": waits[int(0.9 * (len(waits) - 1))] if waits else 0.0,
        "wait max s": waits[-1] if waits else 0.0,
    }


def print_table(name: str, new: dict, old: dict) -> None:
    print(f"\n{name}: new limiter vs baseline (old 50 ms polling)")
    print(f"  {'':20} {'new':>10} {'baseline':>10} {'ratio':>8}")
    for key in new:
        ratio = new[key] / old[key] if old[key] else float("nan")
        print(f"  {key:20} {new[key]:10.2f} {old[key]:10.2f} {ratio:8.2f}")


def postgres_database() -> tuple[str, str] | None:
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        return None
    import psycopg

    name = f"bench_limiter_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url, name


def drop_postgres(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=18_000, help="requests per hour")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--max-wait", type=float, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--stop", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.max_wait is None:
        args.max_wait = 120.0 * 500 / args.rate
    print(
        f"{args.workers} workers, {args.rate}/h (burst 5), {args.seconds:.0f} s per run, "
        f"max wait {args.max_wait:.2f} s, each request holds its slot {HOLD_SECONDS * 1000:.0f} ms"
    )
    with tempfile.TemporaryDirectory(prefix="bench-limiter-") as tmp:
        sqlite = [{"SQLITE_PATH": str(Path(tmp) / f"{kind}.sqlite3")} for kind in ("n", "b")]
        print_table("SQLite", run(sqlite[0], False, args), run(sqlite[1], True, args))
    databases = [postgres_database(), postgres_database()]
    if databases[0] is None:
        print("\nPostgreSQL: skipped (set TEST_POSTGRES_URL, e.g. scripts/with_postgres.sh)")
        return None
    try:
        envs = [{"DATABASE_URL": f"{url.rpartition('/')[0]}/{name}"} for url, name in databases]
        print_table("PostgreSQL", run(envs[0], False, args), run(envs[1], True, args))
    finally:
        for url, name in databases:
            drop_postgres(url, name)
    return None


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
