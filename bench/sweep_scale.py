"""A run of 100,000 queued POIs on PostgreSQL: the sweep and the dashboard's progress poll,
this code against a baseline commit side by side.

Each version runs in its own process on its own fresh database: migrate, create N POIs in a
list, start ONE run of all of them (its own `start_run`: N items, N Django-Q tasks in the ORM
broker, as "Rank missing" does), then measure, median of `--repeat`:
- sweep: `sweep_run(run)` as the dashboard's poll and the minute schedule call it (throttle
  reset before each), with the run healthy (every task queued, a few items running);
- poll: GET of the run panel's progress URL (what the browser asks every 2 s), which sweeps
  too unless throttled: measured throttled, as polls mostly are;
- forced sweep: `sweep_run(run, force=True)`, what starting a second run for the same POIs
  does once.
Reported: milliseconds and database queries of each, and the ratio baseline/this code.

Baseline: commit 196e03e (before issue 16), whose sweep decoded every queued task's signed,
pickled payload and whose panel read Django-Q's lock column.

Run: scripts/with_postgres.sh .venv/bin/python bench/sweep_scale.py [--pois 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "196e03e"


def measure(code: Path, pois: int, repeat: int) -> dict:
    """In this process (started with cwd `code` and DATABASE_URL set): build and measure."""
    sys.path.insert(0, str(code))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "city_wiki.settings",
            "LOG_LEVEL": "ERROR",
            "DJANGO_DEBUG": "1",
            "DJANGO_ALLOWED_HOSTS": "testserver",
        }
    )
    os.environ.setdefault("DJANGO_SECRET_KEY", uuid.uuid4().hex * 2)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse
    from django.utils import timezone

    from cities.models import City, PoiList, PointOfInterest
    from image_ranking.models import RankingRun, RankingRunItem
    from image_ranking.runs.service import start_run
    from image_ranking.runs.sweep import sweep_run

    call_command("migrate", verbosity=0)
    city = City.objects.create(name="Benchville")
    PointOfInterest.objects.bulk_create(
        [PointOfInterest(city=city, name=f"POI {i}", category="see") for i in range(pois)],
        batch_size=5000,
    )
    poi_list = PoiList.objects.create(title="All", city=city)
    through = PointOfInterest.lists.through
    through.objects.bulk_create(
        [
            through(poilist_id=poi_list.pk, pointofinterest_id=pk)
            for pk in PointOfInterest.objects.values_list("pk", flat=True)
        ],
        batch_size=5000,
    )
    started = time.perf_counter()
    run = start_run(scope="missing")
    enqueue_s = time.perf_counter() - started
    # A healthy run: the first few items are being ranked by workers right now.
    first = list(RankingRunItem.objects.filter(run=run).order_by("pk")[:4])
    RankingRunItem.objects.filter(pk__in=[i.pk for i in first]).update(
        outcome="running", started_at=timezone.now()
    )
    RankingRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now())
    connection.cursor().execute("ANALYZE")

    def timed(action) -> tuple[float, int]:
        connection.queries_log.clear()  # full after enqueueing: it would count nothing
        with CaptureQueriesContext(connection) as queries:
            began = time.perf_counter()
            action()
            elapsed = time.perf_counter() - began
        return elapsed * 1000, len(queries)

    def sweep_once() -> None:
        RankingRun.objects.filter(pk=run.pk).update(swept_at=None)
        sweep_run(RankingRun.objects.get(pk=run.pk))

    staff = get_user_model().objects.create_user("bench", is_staff=True)
    client = Client()
    client.force_login(staff)
    url = reverse("image_ranking:run_progress", args=[run.pk])

    def poll() -> None:
        RankingRun.objects.filter(pk=run.pk).update(swept_at=timezone.now())  # throttled
        assert client.get(url).status_code == 200

    def forced() -> None:
        sweep_run(RankingRun.objects.get(pk=run.pk), force=True)

    out = {"enqueue_s": round(enqueue_s, 1)}
    for name, action in (("sweep", sweep_once), ("poll", poll), ("forced sweep", forced)):
        samples = [timed(action) for _ in range(repeat)]
        out[name] = {
            "ms": round(statistics.median(s[0] for s in samples), 1),
            "queries": samples[-1][1],
        }
    lost = RankingRunItem.objects.filter(run=run, outcome="failed").count()
    assert lost == 0, f"{lost} healthy items were swept as lost"
    return out


def fresh_database(server: str) -> str:
    import psycopg

    name = f"bench_sweep_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server.rpartition('/')[0]}/{name}"


def drop(url: str, server: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')


def run_version(code: Path, server: str, pois: int, repeat: int) -> dict:
    url = fresh_database(server)
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--measure", str(code), "--pois", str(pois),
             "--repeat", str(repeat)],
            cwd=code, env={**os.environ, "DATABASE_URL": url},
            capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"{code}: {done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        drop(url, server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pois", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.pois, args.repeat)))
        return
    server = os.environ.get("TEST_POSTGRES_URL")
    if not server:
        raise SystemExit("needs PostgreSQL: scripts/with_postgres.sh .venv/bin/python " + __file__)
    with tempfile.TemporaryDirectory(prefix="sweep-baseline-") as tmp:
        archive = subprocess.run(
            ["git", "archive", args.baseline], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        print(f"{args.pois} POIs queued in one run, PostgreSQL, median of {args.repeat}")
        now = run_version(ROOT, server, args.pois, args.repeat)
        base = run_version(Path(tmp), server, args.pois, args.repeat)
    print(f"{'':14}{'this code':>22}{'baseline ' + args.baseline:>26}{'ratio':>9}")
    for name in ("sweep", "poll", "forced sweep"):
        a, b = now[name], base[name]
        ratio = b["ms"] / a["ms"] if a["ms"] else float("inf")
        print(
            f"{name:14}{a['ms']:>10.1f} ms {a['queries']:>3} queries"
            f"{b['ms']:>12.1f} ms {b['queries']:>3} queries{ratio:>8.1f}x"
        )
    print(f"(enqueueing took {now['enqueue_s']} s here, {base['enqueue_s']} s in the baseline)")


if __name__ == "__main__":
    main()
