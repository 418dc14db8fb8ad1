"""The flow ranks for real: Django-Q jobs (or inline), the Commons stand-in, the NIMA model.

Each POI in a list gets its own Commons answer by position: a good photo among degraded
copies, no hits at all, or an API error. The threshold is 0, so any scored candidate is good
enough and the outcome of each POI does not depend on the model's calibration. With the one
API error, an honest status of the ranking is "partial" (some POIs failed), never "success".
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from django_q.models import OrmQ, Task
from PIL import Image

from cities.models import PointOfInterest, Validation
from cities.services.city_import import import_city_export_file
from image_ranking.models import PoiRanking, RankingRun
from tests.fakes.images import PHOTO_NAMES, degrade, photo
from workflow.city_import import import_city

pytestmark = pytest.mark.slow


def run_flow(export_file, **options):
    options.setdefault("threshold", 0.0)
    options.setdefault("timeout", 120)
    options.setdefault("poll_interval", 0.2)
    return asyncio.run(import_city(str(export_file), **options))


def upscaled(image: Image.Image, width: int = 1400) -> Image.Image:
    return image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)


def export_pois(export_file) -> tuple[list[str], list[str]]:
    """Names of the export's POIs in lists (in export order) and of the others."""
    data = json.loads(export_file.read_text())
    listed: list[str] = []
    for poi_list in data["poi_lists"]:
        listed += [p["name"] for p in poi_list["pois"] if p["name"] not in listed]
    others = [p["name"] for p in data["points_of_interest"] if p["name"] not in listed]
    return listed, others


@pytest.fixture
def commons(file_db, commons_server, nima_scorer, settings, export_file):
    """Commons answers for every listed POI: photos, except one with no hits, one erroring."""
    settings.IMAGE_RANKING_FALLBACK = False
    listed, others = export_pois(export_file)
    kinds = {}
    for index, name in enumerate(listed):
        kind = {2: "no_hits", 4: "commons_error"}.get(index, "photos")
        if kind == "photos":
            base = photo(PHOTO_NAMES[index % len(PHOTO_NAMES)])
            files = [
                commons_server.add_file(f"{index} dark.jpg", upscaled(degrade(base, "dark"))),
                commons_server.add_file(f"{index} good.jpg", upscaled(base)),
            ]
            commons_server.set_results(name, files)
        elif kind == "commons_error":
            commons_server.fail_always("api_error", query=name)
        kinds[name] = kind
    return kinds, others


def api_requests_per_name(commons_server, names) -> dict[str, int]:
    return {name: len(commons_server.api_requests(query=name)) for name in names}


def assert_counts_match_database(ranking: dict, run: RankingRun) -> None:
    statuses = list(PoiRanking.objects.filter(run=run).values_list("status", flat=True))
    assert ranking["processed_count"] == run.tally().processed == len(statuses) == run.tally().total
    assert ranking["updated_count"] == statuses.count(PoiRanking.Status.UPDATED)
    assert ranking["flagged_count"] == statuses.count(PoiRanking.Status.FLAGGED)
    assert ranking["failed_count"] == statuses.count(PoiRanking.Status.FAILED)


def test_flow_waits_for_one_django_q_job_per_poi_and_reports_the_database_counts(
    file_db, q_cluster, commons, commons_server, export_file, caplog
):
    kinds, others = commons
    caplog.set_level(logging.INFO)

    result = run_flow(export_file, batch_size=2)

    ranking = result["image_ranking"]
    run = RankingRun.objects.get()
    assert run.status == RankingRun.Status.FINISHED
    assert ranking["status"] == "partial"
    assert ranking["processed_count"] == len(kinds) == 6
    assert_counts_match_database(ranking, run)
    assert ranking["updated_count"] == 4
    assert ranking["flagged_count"] + ranking["failed_count"] == 2
    stored = PointOfInterest.objects.exclude(image_file="").exclude(image_file__isnull=True)
    assert sorted(stored.values_list("name", flat=True)) == sorted(
        name for name, kind in kinds.items() if kind == "photos"
    )
    no_hits = next(name for name, kind in kinds.items() if kind == "no_hits")
    assert Validation.objects.filter(
        context="image_ranking", aggregate="no_images", description__contains=no_hits
    ).exists()
    # Exactly one job per POI in lists, run by Django-Q: one result row and one search each.
    jobs = Task.objects.filter(group=f"ranking-run-{run.pk}")
    assert sorted(job.args[0] for job in jobs) == sorted(
        PointOfInterest.objects.filter(name__in=kinds).values_list("pk", flat=True)
    )
    assert all(job.success for job in jobs)
    assert not OrmQ.objects.exists()
    assert api_requests_per_name(commons_server, kinds) == dict.fromkeys(kinds, 1)
    assert api_requests_per_name(commons_server, others) == dict.fromkeys(others, 0)
    # Progress was logged while waiting, ending with the whole run.
    progress = [r.getMessage() for r in caplog.records if "POIs processed" in r.getMessage()]
    assert progress and "6/6 POIs processed" in progress[-1]


def test_scope_missing_skips_pois_with_an_image_and_scope_all_ranks_them_but_keeps_it(
    file_db, q_cluster, commons, commons_server, export_file
):
    kinds, _ = commons
    first = run_flow(export_file)["image_ranking"]
    assert first["updated_count"] == 4
    images = {
        poi.name: poi.image_file.read()
        for poi in PointOfInterest.objects.exclude(image_file="").exclude(image_file__isnull=True)
    }
    assert len(images) == 4

    again = run_flow(export_file, scope="missing")["image_ranking"]
    assert again["enqueued_count"] == again["processed_count"] == 2  # only those still empty
    everything = run_flow(export_file, scope="all")["image_ranking"]
    assert everything["enqueued_count"] == everything["processed_count"] == 6
    assert everything["updated_count"] == 0  # existing images are never replaced by "all"
    assert_counts_match_database(everything, RankingRun.objects.get(pk=everything["run_id"]))

    for name, data in images.items():
        assert PointOfInterest.objects.get(name=name).image_file.read() == data
    searches = api_requests_per_name(commons_server, kinds)
    assert searches == {name: 2 if kind == "photos" else 3 for name, kind in kinds.items()}


def test_a_failing_poi_does_not_stop_the_rest_of_the_batch(
    file_db, q_cluster, commons, commons_server, export_file
):
    kinds, _ = commons
    listed = list(kinds)
    import_city_export_file(export_file)  # the flow's import then finds nothing to change
    # The first POIs in ranking order fail too: a Commons error and a broken only candidate.
    first = PointOfInterest.objects.filter(name__in=listed).order_by("category", "rank", "pk")
    broken, erroring = first[0].name, first[1].name
    commons_server.fail_always("api_error", query=erroring)
    commons_server.set_results(
        broken, [commons_server.add_file("broken.jpg", photo("rocket"), damage="truncated")]
    )
    kinds[broken] = kinds[erroring] = "fails"

    ranking = run_flow(export_file)["image_ranking"]

    assert ranking["status"] == "partial"
    assert ranking["processed_count"] == 6
    assert_counts_match_database(ranking, RankingRun.objects.get())
    healthy = [name for name, kind in kinds.items() if kind == "photos"]
    assert healthy, "the scenario needs POIs that rank normally"
    assert ranking["updated_count"] == len(healthy)
    for name in healthy:
        assert PointOfInterest.objects.get(name=name).image_file, name
    for name in (broken, erroring):
        assert not PointOfInterest.objects.get(name=name).image_file, name
        assert PoiRanking.objects.get(poi__name=name).reason, name


def test_inline_ranks_in_the_flows_own_process_without_a_cluster(
    file_db, commons, commons_server, export_file, caplog
):
    kinds, _ = commons
    caplog.set_level(logging.INFO)

    ranking = run_flow(export_file, inline=True, batch_size=4)["image_ranking"]

    assert ranking["status"] == "partial"
    assert ranking["enqueued_count"] == 0
    assert not OrmQ.objects.exists() and not Task.objects.exists()
    assert_counts_match_database(ranking, RankingRun.objects.get())
    assert ranking["updated_count"] == 4
    assert api_requests_per_name(commons_server, kinds) == dict.fromkeys(kinds, 1)
    progress = [r.getMessage() for r in caplog.records if "ranked in-process" in r.getMessage()]
    assert progress == [
        "Image ranking: 4/6 POIs ranked in-process",
        "Image ranking: 6/6 POIs ranked in-process",
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert "Image ranking partial: 6 processed, 4 updated, 1 flagged, 1 failed" in messages


def test_the_flow_follows_a_run_already_going_for_the_same_pois(
    file_db, commons, commons_server, export_file
):
    from cities.models import City
    from image_ranking.runs import service as runs
    from tests.workflow.conftest import ThreadCluster

    kinds, _ = commons
    import_city_export_file(export_file)
    going = runs.start_run(city=City.objects.get(name="Lisbon"), threshold=0.0)
    slow = next(name for name, kind in kinds.items() if kind == "photos")
    commons_server.fail_next("slow", delay=6, query=slow)  # so it is still going meanwhile
    cluster = ThreadCluster().start()
    try:
        ranking = run_flow(export_file)["image_ranking"]
    finally:
        cluster.stop()

    assert ranking["run_id"] == going.pk and ranking["status"] == "partial"
    assert ranking["enqueued_count"] == 0 and ranking["processed_count"] == 6
    assert RankingRun.objects.count() == 1


def test_a_dead_run_does_not_block_the_flow(file_db, commons, commons_server, export_file):
    from cities.models import City
    from image_ranking.runs import service as runs

    import_city_export_file(export_file)
    dead = runs.start_run(city=City.objects.get(name="Lisbon"))
    OrmQ.objects.all().delete()  # its tasks are lost (a purged broker, a dropped task)

    ranking = run_flow(export_file, inline=True)["image_ranking"]

    dead.refresh_from_db()
    assert dead.status == RankingRun.Status.FINISHED and dead.tally().failed == 6
    assert runs.run_result(dead)["status"] == "failed"  # every POI of it failed (lost)
    assert ranking["run_id"] != dead.pk and ranking["status"] == "partial"
    assert ranking["processed_count"] == 6
