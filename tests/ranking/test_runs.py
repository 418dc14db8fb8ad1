"""Runs: which POIs are selected, Django-Q tasks enqueued, counters, the command's JSON line."""

from __future__ import annotations

import io
import json
import pydoc

import pytest
from django.core.management import CommandError, call_command
from django_q.models import OrmQ

from image_ranking.models import PoiRanking, RankingRun
from image_ranking.runs import service as runs
from tests.fakes.images import jpeg_bytes

from .helpers import FixedScorer, store_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def fixed_scorer(monkeypatch):
    """Control-flow tests (selection, queueing, counters): the model's opinion is irrelevant."""
    monkeypatch.setattr(
        "image_ranking.pipeline.ranking.get_scorer", lambda name=None: FixedScorer()
    )


def test_select_pois_scopes(make_poi):
    bare = make_poi("Bare")
    with_image = make_poi("Has photo")
    store_bytes(with_image, jpeg_bytes("coffee"))
    fallback_only = make_poi("Fallback only")
    store_bytes(fallback_only, jpeg_bytes("coffee"), origin=PoiRanking.Origin.FALLBACK)
    make_poi("Not in any list", in_list=False)

    assert set(runs.select_pois("missing")) == {bare, fallback_only}
    assert set(runs.select_pois("all")) == {bare, with_image, fallback_only}
    assert list(runs.select_pois("all", city="lisbon", poi_ids=[bare.pk])) == [bare]
    assert runs.select_pois("all", city="Rome").count() == 0
    assert len(runs.select_pois("all", limit=2)) == 2
    with pytest.raises(ValueError, match="unknown scope"):
        runs.select_pois("everything")


def test_start_run_enqueues_one_django_q_task_per_poi_and_the_last_one_finishes_it(
    make_poi, commons_server, fixed_scorer
):
    pois = [make_poi(f"Queued {i}") for i in range(3)]
    commons_server.set_results("Queued 0", [commons_server.add_file("Q.jpg", jpeg_bytes("coffee"))])
    seen = []
    run = runs.start_run(
        scope="missing", threshold=5.0, progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(3, 3)]  # one batch (of up to 50) enqueued
    assert run.tally().total == 3 and run.status == RankingRun.Status.QUEUED
    queued = [entry.task for entry in OrmQ.objects.all()]
    assert sorted(task["args"][0] for task in queued) == sorted(p.pk for p in pois)
    assert {task["func"] for task in queued} == {"image_ranking.runs.tasks.rank_poi_task"}
    assert runs.run_result(run)["status"] == "queued"

    for task in queued:  # what a Django-Q worker does with each
        pydoc.locate(task["func"])(*task["args"], **task["kwargs"])

    result = runs.run_result(run)
    assert result == {
        "status": "success",
        "message": result["message"],
        "processed_count": 3,
        "updated_count": 1,
        "flagged_count": 2,
        "failed_count": 0,
        "total": 3,
        "run_id": run.pk,
    }
    run.refresh_from_db()
    assert run.finished_at is not None and run.started_at is not None


def test_sync_run_reports_progress(make_poi, commons_server, fixed_scorer):
    for i in range(4):
        make_poi(f"Sync {i}")
    seen = []
    run = runs.start_run(sync=True, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert run.status == RankingRun.Status.FINISHED
    assert (run.tally().processed, run.tally().flagged) == (4, 4)
    assert len(commons_server.api_requests()) == 4


def test_empty_run_finishes_at_once(db):
    run = runs.start_run(scope="missing")
    assert runs.run_result(run)["status"] == "success"
    assert run.tally().total == 0


def test_command_prints_one_json_line(make_poi, commons_server, fixed_scorer):
    make_poi("Command A")
    make_poi("Command B")
    commons_server.set_results(
        "Command A", [commons_server.add_file("A.jpg", jpeg_bytes("chelsea"))]
    )
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "rank_poi_images", "--sync", "--city", "Lisbon", "--threshold", "1", stdout=out, stderr=err
    )
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert {k: result[k] for k in ("status", "processed_count", "updated_count")} == {
        "status": "success",
        "processed_count": 2,
        "updated_count": 1,
    }
    assert (result["flagged_count"], result["failed_count"]) == (1, 0)
    assert "Ranking" in err.getvalue()  # the progress bar went to stderr


def test_command_rejects_an_unknown_city(db):
    with pytest.raises(CommandError, match="No city named"):
        call_command("rank_poi_images", "--city", "Atlantis", stdout=io.StringIO())


def test_rerunning_a_batch_keeps_one_flag_per_poi(make_poi, commons_server, fixed_scorer):
    from cities.models import Validation

    for i in range(3):
        make_poi(f"Flagged {i}")
    for _ in range(3):
        runs.start_run(sync=True)
    assert Validation.objects.filter(context="image_ranking").count() == 3
    assert RankingRun.objects.filter(status=RankingRun.Status.FINISHED).count() == 3


def test_sync_command_without_the_model_fails_once_and_clearly(make_poi, settings, tmp_path):
    from image_ranking.scoring import registry

    settings.SCORING_MODEL_DIR = tmp_path / "no-models-here"  # a machine without the model
    registry.reset()
    make_poi("No model")
    try:
        with pytest.raises(CommandError, match="install_scoring_model"):
            call_command("rank_poi_images", "--sync", stdout=io.StringIO(), stderr=io.StringIO())
    finally:
        registry.reset()
    assert not RankingRun.objects.exists()


def test_django_q_redelivers_only_after_a_claim_is_stale(settings):
    """A task is handed out again `retry` seconds after it started; by then its claim (as old
    as the task timeout) must be stale, or the retry would be skipped forever."""
    from image_ranking.pipeline.claims import claim_timeout

    q = settings.Q_CLUSTER
    assert q["retry"] > q["timeout"]
    assert claim_timeout().total_seconds() == q["timeout"] < q["retry"]
    assert q["max_attempts"] >= 2


def test_a_large_run_is_enqueued_in_batches_of_fifty(city, db):
    from cities.models import PoiList, PointOfInterest

    poi_list = PoiList.objects.create(title="Many", city=city)
    pois = PointOfInterest.objects.bulk_create(
        PointOfInterest(city=city, name=f"P{i}", category="see") for i in range(120)
    )
    poi_list.pois.add(*pois)
    seen = []
    run = runs.start_run(progress=lambda done, total: seen.append((done, total)))
    assert seen == [(50, 120), (100, 120), (120, 120)]
    assert OrmQ.objects.count() == run.tally().total == 120
