"""Dashboard pages at real size, today's code against a baseline commit, side by side.

Builds POIs in lists with 10 candidates each (a third with an image, a tenth flagged, a batch
run going on over 200 of them), once, with the baseline's schema; the current code gets a copy
of that database with its own migrations applied (its indexes). Each code tree then serves
the pages through the whole Django stack (middleware, session, auth, templates) in a process
of its own, and the bench prints the median and best time, the query count and the HTML
weight of each page for both, with the speed-up. Pages: the grid with every filter
combination measured before, the run panel's poll, the focused review and the coverage
report (the last two are new: the baseline has none). Targets: a page of 20 POIs under
100 ms and 150 KB at 100,000 POIs, on SQLite and PostgreSQL.

    .venv/bin/python bench/dashboard.py [--pois 5000] [--repeat 15] [--baseline 196e03e]
    scripts/with_postgres.sh .venv/bin/python bench/dashboard.py --postgres --pois 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "196e03e"  # main before issue 18: Django+Jinja2 cards, ids of the whole view


def setup_django(code: Path, db: str) -> None:
    """Django from the code tree `code` on `db` (a SQLite path or a PostgreSQL URL)."""
    sys.path.insert(0, str(code))
    if db.startswith("postgres"):
        os.environ["DATABASE_URL"] = db
    else:
        os.environ["SQLITE_PATH"] = db
        os.environ.pop("DATABASE_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "city_wiki.settings"
    os.environ.setdefault("DJANGO_DEBUG", "1")  # a development tool: settings of `make run`
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = False  # no query log, no debug script: as served in production
    settings.ALLOWED_HOSTS = ["localhost"]
    call_command("migrate", verbosity=0, interactive=False)


def make_data(n_pois: int, n_candidates: int) -> None:
    """POIs in lists of 100, a third with an image (the pipeline's winner), a tenth flagged
    (with their Validation), every 20th showing a fallback, 10 scored candidates each (every
    7th POI with a damaged copy), a label on every fifth POI's best candidate (so the page
    shows label states), and a batch run going on over the first 200 POIs (so the page shows
    live cards and a tally)."""
    from django.utils import timezone

    from cities.models import City, PoiList, PointOfInterest, Validation
    from image_ranking.models import (
        Candidate,
        ImageTrainingData,
        PoiRanking,
        RankingRun,
        RankingRunItem,
    )

    city = City.objects.create(name="Benchville", latitude=45.0, longitude=9.0)
    PointOfInterest.objects.bulk_create(
        [
            PointOfInterest(
                city=city,
                name=f"Sight {i:05d}",
                category="see",
                latitude=45.0,
                longitude=9.0,
                image_file=f"cities/images/pois/benchville/sight-{i}.jpg" if i % 3 == 0 else "",
            )
            for i in range(n_pois)
        ],
        batch_size=1000,
    )
    pois = list(PointOfInterest.objects.order_by("pk"))
    through = PoiList.pois.through
    for start in range(0, n_pois, 100):
        poi_list = PoiList.objects.create(title=f"List {start // 100:03d}", city=city)
        through.objects.bulk_create(
            [
                through(poilist_id=poi_list.pk, pointofinterest_id=p.pk)
                for p in pois[start : start + 100]
            ]
        )
    base = "https://upload.wikimedia.org/wikipedia/commons"
    candidates, rankings, labels = [], [], []
    for i, poi in enumerate(pois):
        for rank in range(1, n_candidates + 1):
            url = f"{base}/a/ab/Sight_{i}_{rank}.jpg"
            candidates.append(
                Candidate(
                    poi=poi,
                    search_rank=rank,
                    title=f"File:Sight {i} {rank}.jpg",
                    image_url=url,
                    thumb_url=f"{base}/thumb/a/ab/Sight_{i}_{rank}.jpg/330px-Sight_{i}_{rank}.jpg",
                    width=4000,
                    height=3000,
                    score=round(6.5 - 0.2 * rank + (i % 7) * 0.1, 2),
                    rank_score=round(6.5 - 0.2 * rank + (i % 7) * 0.1 - (rank == 2), 2),
                    model_name="nima",
                    distance_km=0.2 * rank,
                    eligible=rank < n_candidates,
                    ineligible_reason="" if rank < n_candidates else "too far",
                    # every 7th POI's second candidate is a dark copy of its first
                    damage=f"dark copy of File:Sight {i} 1.jpg" if rank == 2 and i % 7 == 0 else "",
                    is_winner=rank == 1,
                )
            )
        flagged = i % 10 == 1
        rankings.append(
            PoiRanking(
                poi=poi,
                status="flagged" if flagged else ("updated" if i % 3 == 0 else "ranked"),
                best_score=6.3,
                threshold=4.5,
                reason="below threshold" if flagged else "",
                image_origin="pipeline" if i % 3 == 0 else "",
                ranked_at=timezone.now() - timezone.timedelta(minutes=(i * 37) % 5000),
                validation=Validation(
                    parent=city,
                    context="image_ranking",
                    aggregate="below_threshold",
                    description="below threshold",
                )
                if flagged
                else None,
            )
        )
        if i % 5 == 0:
            labels.append(
                ImageTrainingData(
                    poi=poi,
                    image_url=f"{base}/a/ab/Sight_{i}_1.jpg",
                    label="good" if i % 2 else "bad",
                    aesthetic_score=6.3,
                )
            )
        if len(candidates) >= 10_000:
            Candidate.objects.bulk_create(candidates, batch_size=2000)
            candidates = []
    Candidate.objects.bulk_create(candidates, batch_size=2000)
    flags = [r.validation for r in rankings if r.validation is not None]
    Validation.objects.bulk_create(flags, batch_size=2000)
    PoiRanking.objects.bulk_create(rankings, batch_size=2000)
    # Every 20th POI (among those flagged or without an image) shows its category fallback.
    fallback = [p.pk for i, p in enumerate(pois) if i % 20 == 1]
    PointOfInterest.objects.filter(pk__in=fallback).update(
        image_file="cities/images/pois/benchville/fallback.jpg"
    )
    PoiRanking.objects.filter(poi_id__in=fallback).update(image_origin="fallback")
    ImageTrainingData.objects.bulk_create(labels, batch_size=2000)
    run = RankingRun.objects.create(
        status="running", threshold=4.5, started_at=timezone.now(), active_key="missing:*"
    )
    RankingRunItem.objects.bulk_create(
        RankingRunItem(
            run=run,
            poi=poi,
            outcome="updated" if i < 50 else ("running" if i < 52 else "pending"),
        )
        for i, poi in enumerate(pois[:200])
    )


def poll_url() -> str:
    """The run panel's poll as the first page sends it: its 20 POIs, 2 of them shown
    running and 18 queued, and the processed count it shows (the answer swaps nothing:
    nothing changed)."""
    from image_ranking.models import RankingRun, RankingRunItem

    run = RankingRun.objects.get(status="running")
    items = list(
        RankingRunItem.objects.filter(run=run)
        .order_by("poi__name", "poi_id")
        .values_list("poi_id", "outcome")[:20]
    )
    pois = ",".join(str(pk) for pk, _ in items)
    codes = {"pending": "q", "running": "r"}
    shown = ",".join(f"{pk}{codes[o]}" for pk, o in items if o in codes)
    done = run.tally().processed  # the processed count the page shows: the counts unchanged
    return f"/image-ranking/runs/{run.pk}/?pois={pois}&shown={shown}&done={done}"


def measure(client, url: str, repeat: int) -> dict:
    """Median and best milliseconds (warm: what a curator browsing gets), the first request's
    with an empty cache (cold), query count and response size of GET url."""
    from django.core.cache import cache
    from django.db import connection

    cache.clear()  # cold: the header counts and the report's figures computed afresh
    start = time.perf_counter()
    response = client.get(url)
    cold = (time.perf_counter() - start) * 1000
    assert response.status_code == 200, (url, response.status_code)
    if url.startswith("/image-ranking/?") or url == "/image-ranking/":
        # What the browser does next: fetch the filter counts not kept yet (404 before them).
        client.get(url.replace("/image-ranking/", "/image-ranking/filters/", 1))
    queries: list[str] = []
    with connection.execute_wrapper(
        lambda execute, sql, *a: queries.append(sql) or execute(sql, *a)
    ):
        client.get(url)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "ms": statistics.median(times),
        "cold": cold,
        "best": min(times),
        "queries": len(queries),
        "kib": len(response.content) / 1024,
    }


def pages() -> list[tuple[str, str]]:
    from cities.models import PointOfInterest

    middle = PointOfInterest.objects.order_by("pk").values_list("pk", flat=True)[
        PointOfInterest.objects.count() // 2
    ]
    return [
        ("20 per page (default)", "/image-ranking/"),
        ("50 per page", "/image-ranking/?per_page=50"),
        ("status=missing, page 40", "/image-ranking/?status=missing&page=40"),
        ("list filter, 50 per page", "/image-ranking/?list=7&per_page=50"),
        ("status=fallback", "/image-ranking/?status=fallback"),
        ("20, search + sort=score", "/image-ranking/?q=ght+01&sort=score"),
        ("20, search Sìght + sort=ranked", "/image-ranking/?q=S%C3%ACght+02&sort=ranked"),
        ("50, search + sort=status", "/image-ranking/?q=sight&sort=status&per_page=50"),
        ("20, unlabelled + sort=score", "/image-ranking/?unlabelled=1&sort=score"),
        ("20, all on, page 5", "/image-ranking/?q=sight&sort=score&unlabelled=1&page=5"),
        # The filters with counts (the baseline has none: it ignores them, serving its page).
        ("20, flag=below_threshold", "/image-ranking/?flag=below_threshold"),
        ("20, damage=damaged, page 40", "/image-ranking/?damage=damaged&page=40"),
        ("20, origin+score+label", "/image-ranking/?origin=pipeline&score=6-7&label=unlabelled"),
        (
            "20, every filter+search+sort p5",
            "/image-ranking/?q=sight&sort=score&flag=below_threshold&score=6-7&label=unlabelled"
            "&damage=none&origin=none&page=5",
        ),
        ("filter counts (after a page)", "/image-ranking/filters/"),
        ("run poll, 20 cards watched", poll_url()),
        ("focused review, mid-view POI", f"/image-ranking/review/?poi={middle}"),
        ("focused review, sort=score", f"/image-ranking/review/?poi={middle}&sort=score"),
        ("coverage report", "/image-ranking/report/"),
    ]


def worker(args) -> None:
    """Serve and measure the pages with one code tree; prints a JSON line."""
    setup_django(Path(args.code), args.db)
    from django.contrib.auth import get_user_model
    from django.test import Client

    if args.make_data:
        start = time.perf_counter()
        make_data(args.pois, args.candidates)
        print(f"data: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        return
    from django.db import connection

    if connection.vendor == "postgresql":
        # What autovacuum does soon after a bulk load: without statistics the planner takes
        # 100,000 rankings in a score range for 23 and picks nested loops (560 ms, not 80).
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    user, _ = get_user_model().objects.get_or_create(username="bench", is_staff=True)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    results = {}
    for name, url in pages():
        if client.get(url).status_code != 200:
            continue  # a page the code tree does not have
        results[name] = measure(client, url, args.repeat)
    print(json.dumps(results))


def run_worker(code: Path, db: str, args, *extra: str) -> dict:
    command = [sys.executable, __file__, "--worker", "--code", str(code), "--db", db]
    command += ["--pois", str(args.pois), "--candidates", str(args.candidates)]
    command += ["--repeat", str(args.repeat), *extra]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=code)
    sys.stderr.write(out.stderr[-2000:] if out.returncode else "")
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def export_tree(ref: str, into: Path) -> Path:
    """The files of commit `ref` (git archive), with the model files the bench needs."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def copy_database(db: str, suffix: str) -> str:
    """A copy of the database for the other code tree."""
    if not db.startswith("postgres"):
        copy = db.replace(".sqlite3", f"-{suffix}.sqlite3")
        shutil.copyfile(db, copy)
        return copy
    import psycopg

    server, name = db.rpartition("/")[0], db.rpartition("/")[2]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}_{suffix}" TEMPLATE "{name}"')
    return f"{server}/{name}_{suffix}"


def drop_databases(db: str, names: list[str]) -> None:
    if not db.startswith("postgres"):
        return
    import psycopg

    server = db.rpartition("/")[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pois", type=int, default=5000)
    parser.add_argument("--candidates", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--baseline", default=BASELINE, help="git commit to compare with")
    parser.add_argument("--postgres", action="store_true", help="on TEST_POSTGRES_URL's server")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--make-data", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        base_code = export_tree(args.baseline, Path(tmp) / "baseline")
        if args.postgres:
            import psycopg

            server = os.environ["TEST_POSTGRES_URL"]
            name = f"bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            db = f"{server.rpartition('/')[0]}/{name}"
        else:
            db = str(Path(tmp) / "bench.sqlite3")
        try:
            start = time.perf_counter()
            run_worker(base_code, db, args, "--make-data")
            made = time.perf_counter() - start
            current_db = copy_database(db, "current")
            baseline = run_worker(base_code, db, args)
            current = run_worker(ROOT, current_db, args)
        finally:
            if args.postgres:
                drop_databases(db, [name, f"{name}_current"])
        where = "PostgreSQL" if args.postgres else "SQLite"
        print(
            f"{args.pois} POIs in lists x {args.candidates} candidates on {where} "
            f"({made:.0f} s to create); median (best) of {args.repeat} runs; "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        head = f"{'page':<32}{'current (cold: empty cache)':>45}"
        print(f"{head}{'baseline ' + args.baseline:>34}{'speed-up':>10}")
        for name in current:
            c, b = current[name], baseline.get(name)
            left = (
                f"{c['ms']:7.1f} ({c['best']:5.1f}) ms {c['queries']:3d} q {c['kib']:5.0f} KiB"
                f" cold {c.get('cold', 0):6.0f}"
            )
            right = (
                f"{b['ms']:7.1f} ({b['best']:5.1f}) ms {b['queries']:3d} q {b['kib']:5.0f} KiB"
                if b
                else f"{'(no such page)':>31}"
            )
            ratio = f"{b['ms'] / c['ms']:8.1f}x" if b else ""
            print(f"{name:<32}{left:>45}{right:>34}{ratio:>10}")
        grid = [n for n in current if n.startswith("20") or n.startswith("status")]
        worst = max(grid, key=lambda n: current[n]["ms"])
        heaviest = max(grid, key=lambda n: current[n]["kib"])
        print(
            f"slowest page of 20 POIs: {current[worst]['ms']:.1f} ms ({worst}); heaviest: "
            f"{current[heaviest]['kib']:.0f} KiB ({heaviest}); targets: 100 ms, 150 KB"
        )


if __name__ == "__main__":
    main()
