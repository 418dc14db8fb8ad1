"""The Prefect flow import_city: import, enqueue one job per POI in lists, time out clearly."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from django_q.models import OrmQ

from cities.models import City, PointOfInterest
from image_ranking.models import RankingRun
from tests.conftest import REPO_ROOT
from workflow.city_import import ImportCityError, import_city


def run_flow(export_file, **options):
    return asyncio.run(import_city(str(export_file), **options))


def queued_jobs() -> list[dict]:
    return [row.task for row in OrmQ.objects.all()]


def listed_poi_ids() -> set[int]:
    return set(
        PointOfInterest.objects.filter(lists__isnull=False).distinct().values_list("pk", flat=True)
    )


def test_flow_imports_the_city_and_enqueues_exactly_one_job_per_poi_in_lists(file_db, export_file):
    result = run_flow(export_file, wait=False)

    assert result["city"] == "Lisbon"
    assert result["import"]["status"] == "success"
    assert result["import"]["pois"] == 8
    assert PointOfInterest.objects.count() == 8
    in_lists = listed_poi_ids()
    assert len(in_lists) == 6

    jobs = queued_jobs()
    assert sorted(job["args"][0] for job in jobs) == sorted(in_lists)  # none twice, none outside
    ranking = result["image_ranking"]
    run = RankingRun.objects.get()
    assert ranking["run_id"] == run.pk
    assert ranking["enqueued_count"] == ranking["total"] == run.tally().total == 6
    assert ranking["status"] == "queued"
    assert ranking["processed_count"] == 0
    assert {job["group"] for job in jobs} == {f"ranking-run-{run.pk}"}


def test_waiting_without_a_cluster_ends_in_a_clear_timeout_error_not_a_hang(file_db, export_file):
    started = time.monotonic()
    with pytest.raises(ImportCityError) as error:
        run_flow(export_file, wait=True, timeout=1.5, poll_interval=0.2)
    elapsed = time.monotonic() - started

    assert elapsed < 30  # the flow's own overhead included; the wait itself is 1.5 s
    message = str(error.value)
    assert "image_ranking" in message
    assert "did not finish within 1.5 s" in message
    assert "0/6 POIs processed" in message
    assert "qcluster" in message
    assert error.value.result["import"]["status"] == "success"
    assert error.value.result["image_ranking"]["status"] == "error"
    # Nothing is lost: the jobs stay queued for a cluster that starts later.
    assert len(queued_jobs()) == 6
    assert RankingRun.objects.get().status == RankingRun.Status.QUEUED


def test_a_bad_export_fails_the_flow_with_the_reason_and_writes_nothing(file_db, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"city": {"name": "Lisbon"}, "districts": [')

    with pytest.raises(ImportCityError) as error:
        run_flow(broken)

    assert "invalid JSON" in str(error.value)
    assert error.value.result["import"]["status"] == "error"
    assert "image_ranking" not in error.value.result
    assert not City.objects.exists()
    assert not OrmQ.objects.exists()


def test_a_whole_demo_city_is_enqueued_in_batches_of_50_one_job_per_listed_poi(file_db, caplog):
    caplog.set_level(logging.INFO)
    rome = REPO_ROOT / "cities" / "fixtures" / "demo" / "rome.json"

    ranking = run_flow(rome, wait=False)["image_ranking"]

    in_lists = listed_poi_ids()
    assert len(in_lists) == 77 < PointOfInterest.objects.count()
    assert ranking["enqueued_count"] == 77
    assert sorted(job["args"][0] for job in queued_jobs()) == sorted(in_lists)
    assert any("77 jobs enqueued in 2 batch(es) of 50" in r.getMessage() for r in caplog.records)
