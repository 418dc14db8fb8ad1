"""Dashboard page at real size: 5,000 POIs in lists with 10 candidates each.

Renders /image-ranking/ through the whole Django stack (middleware, session, auth, template)
on a throwaway SQLite file database and prints the median render time and query count for a
few pages (also with a name search, a sort and the unlabelled filter on), next to the naive
page (the same view without select_related/prefetch, one query per POI and relation) with the
ratio. Target: under 100 ms for a page of 20, with search and sort on too.

    .venv/bin/python bench/dashboard.py [--pois 5000] [--candidates 10] [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(db_path: Path) -> None:
    os.environ["SQLITE_PATH"] = str(db_path)
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "city_wiki.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")  # a development tool
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = False  # no query log, no debug script: as served in production
    settings.ALLOWED_HOSTS = ["localhost"]
    call_command("migrate", verbosity=0, interactive=False)


def make_data(n_pois: int, n_candidates: int) -> None:
    """POIs in lists of 100, a third with an image (the pipeline's winner), a tenth flagged
    (with their Validation), every 20th showing a fallback, 10 scored candidates each, a
    label on every fifth POI's best candidate (so the page shows label states), and a batch
    run going on over the first 200 POIs (so the page shows live cards and a tally)."""
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


def measure(client, url: str, repeat: int) -> tuple[float, int, int, float]:
    """Median milliseconds, query count, response size and best (fastest) milliseconds of GET
    url: on a machine other work keeps busy, the best run is the steadier figure."""
    from django.db import connection

    response = client.get(url)  # warm-up
    assert response.status_code == 200, (url, response.status_code)
    queries = []
    with connection.execute_wrapper(
        lambda execute, sql, *a: queries.append(sql) or execute(sql, *a)
    ):
        client.get(url)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), len(queries), len(response.content), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pois", type=int, default=5000)
    parser.add_argument("--candidates", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        setup_django(Path(tmp) / "bench.sqlite3")
        start = time.perf_counter()
        make_data(args.pois, args.candidates)
        print(
            f"data: {args.pois} POIs in lists x {args.candidates} candidates "
            f"({time.perf_counter() - start:.1f} s to create)"
        )

        from django.contrib.auth import get_user_model
        from django.test import Client

        from cities.models import PointOfInterest
        from image_ranking.review import selectors

        user = get_user_model().objects.create_user("bench", is_staff=True)
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)

        pages = [
            ("20 per page (default)", "/image-ranking/"),
            ("50 per page", "/image-ranking/?per_page=50"),
            ("status=missing, page 40", "/image-ranking/?status=missing&page=40"),
            ("list filter, 50 per page", "/image-ranking/?list=7&per_page=50"),
            ("status=fallback", "/image-ranking/?status=fallback"),
            # Search and sort on: the same pages with a name search and another order.
            ("20, search + sort=score", "/image-ranking/?q=ght+01&sort=score"),
            ("20, search Sìght + sort=ranked", "/image-ranking/?q=S%C3%ACght+02&sort=ranked"),
            ("50, search + sort=status", "/image-ranking/?q=sight&sort=status&per_page=50"),
            ("20, unlabelled + sort=score", "/image-ranking/?unlabelled=1&sort=score"),
            ("20, all on, page 5", "/image-ranking/?q=sight&sort=score&unlabelled=1&page=5"),
            ("run poll, 20 cards watched", poll_url()),
        ]
        optimized = {name: measure(client, url, args.repeat) for name, url in pages}
        # The naive page: the same view and template, without select_related / prefetch.
        real_queryset = selectors.card_queryset
        selectors.card_queryset = lambda: PointOfInterest.objects.all()
        try:
            naive = {name: measure(client, url, args.repeat) for name, url in pages}
        finally:
            selectors.card_queryset = real_queryset

        print(f"median (best) of {args.repeat} runs; load average {os.getloadavg()[0]:.2f}")
        print(f"{'page':<32}{'dashboard':>23}{'naive baseline':>30}{'speed-up':>10}")
        for name, _ in pages:
            ms, queries, size, best = optimized[name]
            naive_ms, naive_queries, _, naive_best = naive[name]
            print(
                f"{name:<32}{ms:>8.1f} ({best:5.1f}) ms {queries:>4} q"
                f"{naive_ms:>12.1f} ({naive_best:5.1f}) ms {naive_queries:>4} q"
                f"{naive_ms / ms:>8.1f}x   ({size // 1024} KiB)"
            )
        pages_of_20 = [
            name for name, url in pages if "per_page=50" not in url and "runs/" not in url
        ]
        worst = max(pages_of_20, key=lambda name: optimized[name][0])
        print(
            f"slowest page of 20 POIs: {optimized[worst][0]:.1f} ms ({worst}); target: under 100 ms"
        )
        plain, searched = optimized[pages[0][0]], optimized["20, search + sort=score"]
        print(
            f"20 per page: {plain[0]:.1f} ms (best {plain[3]:.1f}), {plain[1]} q plain; "
            f"{searched[0]:.1f} ms (best {searched[3]:.1f}), {searched[1]} q with search and "
            "sort on"
        )


if __name__ == "__main__":
    main()
