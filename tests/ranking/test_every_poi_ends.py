"""Every POI of a run ends with an image or a flag, and every run ends: one item per POI,
lost tasks swept, timeouts and unexpected errors recorded, duplicates refused atomically."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone
from django_q.exceptions import TimeoutException
from django_q.models import OrmQ, Task

from image_ranking.models import PoiRanking, RankingRun, RankingRunItem
from image_ranking.runs import service as runs
from image_ranking.runs import sweep
from image_ranking.runs.tasks import rank_poi_task
from tests.fakes.images import jpeg_bytes
from tests.ranking.helpers import FixedScorer, scaled
from tests.ranking.helpers import flag_rows as flags_of

Outcome = RankingRunItem.Outcome


@pytest.fixture
def fixed_scorer(monkeypatch):
    """Control flow only: the model's opinion is irrelevant here."""
    monkeypatch.setattr(
        "image_ranking.pipeline.ranking.get_scorer", lambda name=None: FixedScorer()
    )


def run_tasks(run: RankingRun) -> None:
    """What a Django-Q worker does with each queued task of the run."""
    import pydoc

    for row in OrmQ.objects.all():
        task = row.task
        pydoc.locate(task["func"])(*task["args"], **task["kwargs"])
        row.delete()


# --- Items ------------------------------------------------------------------------------------


def test_a_run_has_one_item_per_poi_and_its_counts_come_from_them(
    make_poi, commons_server, fixed_scorer
):
    good = make_poi("Good place")
    bare = make_poi("Bare place")
    commons_server.set_results(
        "Good place", [commons_server.add_file("G.jpg", jpeg_bytes("coffee"))]
    )
    run = runs.start_run(threshold=1)
    items = {i.poi_id: i for i in RankingRunItem.objects.filter(run=run)}
    assert set(items) == {good.pk, bare.pk}
    assert all(i.outcome == Outcome.PENDING and i.task_id for i in items.values())
    assert run.tally().processed == 0

    run_tasks(run)
    run.refresh_from_db()
    outcomes = dict(RankingRunItem.objects.filter(run=run).values_list("poi_id", "outcome"))
    assert outcomes == {good.pk: Outcome.UPDATED, bare.pk: Outcome.FLAGGED}
    tally = run.tally()
    assert (tally.total, tally.processed, tally.updated, tally.flagged) == (2, 2, 1, 1)
    assert run.status == RankingRun.Status.FINISHED and run.active_key is None


def test_a_candidate_without_thumburl_fails_alone_not_its_poi(
    make_poi, commons_server, fixed_scorer
):
    poi = make_poi("Praça do Comércio")
    broken = commons_server.add_file("Huge scan.jpg", scaled("rocket", 1200))
    broken.thumberror = True
    fine = commons_server.add_file("Praça.jpg", scaled("coffee", 1200))
    commons_server.set_results("Praça do Comércio", [broken, fine])
    assert rank_poi_task(poi.pk, threshold=1) == "updated"
    errors = dict(poi.candidates.values_list("title", "error"))
    assert "no thumbnail to score" in errors["File:Huge scan.jpg"]
    assert errors["File:Praça.jpg"] == ""
    assert poi.candidates.get(title="File:Praça.jpg").is_winner


@pytest.mark.parametrize(
    "setting, value", [("IMAGE_RANKING_THUMB_WIDTH", 300), ("IMAGE_RANKING_WINNER_WIDTH", 1000)]
)
def test_a_non_standard_width_fails_manage_py_check(settings, setting, value):
    setattr(settings, setting, value)
    with pytest.raises(SystemCheckError, match=f"{setting}={value} is not a standard"):
        call_command("check")


def test_an_unexpected_error_ends_in_a_failed_item_and_one_flag(
    make_poi, commons_server, fixed_scorer, monkeypatch
):
    poi = make_poi("Crashy")

    def crash(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("image_ranking.pipeline.ranking._rank_claimed", crash)
    run = runs.start_run(sync=True)
    item = RankingRunItem.objects.get(run=run, poi=poi)
    assert item.outcome == Outcome.FAILED and "disk on fire" in item.reason
    [flag] = flags_of(poi)
    assert flag.aggregate == "internal_error" and "disk on fire" in flag.description
    assert run.status == RankingRun.Status.FINISHED
    runs.start_run(sync=True)  # a second run keeps one flag
    assert len(flags_of(poi)) == 1


def test_django_qs_timeout_is_recorded_then_re_raised(make_poi, commons_server, monkeypatch):
    poi = make_poi("Slow place")
    run = RankingRun.objects.create()
    RankingRunItem.objects.create(run=run, poi=poi, task_id="t1")

    def times_out(*args, **kwargs):
        raise TimeoutException("Task exceeded maximum timeout value (300 seconds)")

    monkeypatch.setattr("image_ranking.pipeline.ranking._rank_claimed", times_out)
    with pytest.raises(TimeoutException):
        rank_poi_task(poi.pk, run_id=run.pk)
    item = RankingRunItem.objects.get(run=run, poi=poi)
    assert item.outcome == Outcome.FAILED and "timeout" in item.reason
    assert [f.aggregate for f in flags_of(poi)] == ["internal_error"]
    assert PoiRanking.objects.get(poi=poi).claimed_by == ""  # the claim was released
    run.refresh_from_db()
    assert run.status == RankingRun.Status.FINISHED


def test_a_rate_limit_wait_past_the_budget_fails_the_poi_with_the_reason(
    make_poi, commons_server, fixed_scorer, settings
):
    from image_ranking.commons.ratelimit import api_limiter

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 5}  # budget 3 s
    poi = make_poi("Patient place")
    api_limiter().block_until(timezone.now().timestamp() + 60)  # a long Retry-After
    assert rank_poi_task(poi.pk) == "failed"
    ranking = PoiRanking.objects.get(poi=poi)
    assert "time budget" in ranking.reason
    assert [f.aggregate for f in flags_of(poi)] == ["fetch_failed"]
    assert commons_server.api_requests() == []


# --- The sweep --------------------------------------------------------------------------------


def queued_run(make_poi, names: list[str]) -> RankingRun:
    for name in names:
        make_poi(name)
    return runs.start_run()


def test_a_task_that_django_q_ended_without_recording_is_swept(make_poi, commons_server):
    run = queued_run(make_poi, ["Timed out", "Still queued"])
    timed_out, queued = RankingRunItem.objects.filter(run=run).order_by("poi__name")
    OrmQ.objects.filter(
        pk__in=[r.pk for r in OrmQ.objects.all() if r.task["id"] == timed_out.task_id]
    ).delete()
    Task.objects.create(
        id=timed_out.task_id, name="x", func="f", started=timezone.now(), stopped=timezone.now(),
        success=False, result="Task exceeded maximum timeout value (300 seconds) : Traceback…",
    )  # fmt: skip
    assert sweep.sweep_run(run, force=True) == 1
    timed_out.refresh_from_db()
    assert timed_out.outcome == Outcome.FAILED and "timeout" in timed_out.reason
    assert [f.aggregate for f in flags_of(timed_out.poi)] == ["internal_error"]
    assert RankingRunItem.objects.get(pk=queued.pk).outcome == Outcome.PENDING
    run.refresh_from_db()
    assert run.is_active  # the queued one can still finish


def test_a_task_gone_from_the_queue_is_swept_and_the_run_ends(make_poi, commons_server):
    run = queued_run(make_poi, ["Lost A", "Lost B"])
    OrmQ.objects.all().delete()  # e.g. dropped after max_attempts, or purged by hand
    assert sweep.sweep_run(run, force=True) == 2
    run.refresh_from_db()
    assert run.status == RankingRun.Status.FINISHED
    assert set(RankingRunItem.objects.filter(run=run).values_list("outcome", flat=True)) == {
        Outcome.FAILED
    }
    assert all(len(flags_of(i.poi)) == 1 for i in RankingRunItem.objects.filter(run=run))


def test_an_item_running_past_the_task_timeout_is_swept(make_poi, commons_server, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 60}
    run = queued_run(make_poi, ["Killed worker"])
    item = RankingRunItem.objects.get(run=run)
    # A worker took it and was SIGKILLed: the broker still holds the task, locked.
    RankingRunItem.objects.filter(pk=item.pk).update(
        outcome=Outcome.RUNNING, started_at=timezone.now() - timedelta(seconds=30)
    )
    assert sweep.sweep_run(run, force=True) == 0  # within the timeout: still alive
    RankingRunItem.objects.filter(pk=item.pk).update(
        started_at=timezone.now() - timedelta(seconds=60) - sweep.GRACE - timedelta(seconds=1)
    )
    assert sweep.sweep_run(run, force=True) == 1
    item.refresh_from_db()
    assert item.outcome == Outcome.FAILED and "exceeded the task timeout" in item.reason


def test_a_sync_run_whose_process_died_is_swept(make_poi, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 60}
    poi = make_poi("Ctrl-C victim")
    run = RankingRun.objects.create(status=RankingRun.Status.RUNNING, active_key="missing:*")
    RankingRunItem.objects.create(run=run, poi=poi)  # no task: ranked in one process
    RankingRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(hours=1))
    run.refresh_from_db()
    assert sweep.sweep_run(run, force=True) == 1
    run.refresh_from_db()
    assert run.status == RankingRun.Status.FINISHED


def test_the_sweep_is_throttled_unless_forced(make_poi):
    run = queued_run(make_poi, ["Throttled"])
    long_ago = timezone.now() - sweep.task_timeout() - sweep.GRACE - timedelta(seconds=1)
    RankingRun.objects.filter(pk=run.pk).update(created_at=long_ago)  # nothing moved since
    RankingRun.objects.filter(pk=run.pk).update(swept_at=timezone.now())  # just swept
    run.refresh_from_db()
    OrmQ.objects.all().delete()
    assert sweep.sweep_run(run) == 0  # a poll a moment later does no work
    RankingRun.objects.filter(pk=run.pk).update(
        swept_at=timezone.now() - sweep.SWEEP_INTERVAL - timedelta(seconds=1)
    )
    assert sweep.sweep_run(run) == 1
    assert RankingRun.objects.get(pk=run.pk).status == RankingRun.Status.FINISHED


# --- Duplicates and cancel --------------------------------------------------------------------


def test_a_second_run_for_the_same_pois_is_refused_until_the_first_ends(make_poi, commons_server):
    first = queued_run(make_poi, ["Twice"])
    with pytest.raises(runs.RunAlreadyActive, match=f"Run {first.pk}"):
        runs.start_run()
    other_scope = runs.start_run(scope="all")  # another scope may run alongside
    assert other_scope.pk != first.pk
    # The first run's task is lost: the next start sweeps it and is not blocked.
    OrmQ.objects.all().delete()
    again = runs.start_run()
    first.refresh_from_db()
    assert first.status == RankingRun.Status.FINISHED and again.is_active


def test_the_duplicate_check_is_atomic(make_poi):
    """Two starts racing: the unique key lets exactly one insert win."""
    from django.db import IntegrityError

    make_poi("Race")
    RankingRun.objects.create(active_key="missing:*")
    with pytest.raises(IntegrityError):
        RankingRun.objects.create(active_key="missing:*")


def test_cancel_removes_queued_tasks_and_a_late_delivery_does_nothing(
    make_poi, commons_server, fixed_scorer
):
    run = queued_run(make_poi, ["Cancel A", "Cancel B"])
    late = [row.task for row in OrmQ.objects.all()]
    assert runs.cancel_run(run, reason="curator changed their mind") == 2
    assert OrmQ.objects.count() == 0
    run.refresh_from_db()
    assert run.status == RankingRun.Status.CANCELLED and run.active_key is None
    import pydoc

    for task in late:  # a worker had prefetched them before the cancel
        assert pydoc.locate(task["func"])(*task["args"], **task["kwargs"]) == "skipped"
    assert commons_server.api_requests() == []
    assert set(RankingRunItem.objects.filter(run=run).values_list("outcome", flat=True)) == {
        Outcome.CANCELLED
    }
    runs.start_run()  # nothing blocks the next run


def test_ctrl_c_in_a_sync_run_cancels_the_rest(make_poi, commons_server, monkeypatch):
    make_poi("Ctrl A")
    make_poi("Ctrl B")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("image_ranking.runs.tasks.rank_poi_task", interrupt)
    with pytest.raises(KeyboardInterrupt):
        runs.start_run(sync=True)
    run = RankingRun.objects.get()
    assert run.status == RankingRun.Status.CANCELLED
    assert run.tally().cancelled == 2


# --- Entry points -----------------------------------------------------------------------------


def test_the_periodic_sweep_is_scheduled_once(db):
    from django_q.models import Schedule

    call_command("migrate", verbosity=0)  # post_migrate again: still one schedule
    [schedule] = Schedule.objects.filter(name="image-ranking-sweep")
    assert schedule.func == "image_ranking.runs.tasks.sweep_runs_task"
    assert (schedule.schedule_type, schedule.minutes) == (Schedule.MINUTES, 1)


def test_every_thumbnail_failing_flags_fetch_failed_not_no_images(
    make_poi, commons_server, fixed_scorer
):
    poi = make_poi("Unreachable thumbs")
    files = [commons_server.add_file(f"U{i}.jpg", scaled("coffee", 1200)) for i in range(2)]
    commons_server.set_results("Unreachable thumbs", files)
    commons_server.fail_always("html", status=404, target="media")
    assert rank_poi_task(poi.pk, threshold=1) == "flagged"
    assert [f.aggregate for f in flags_of(poi)] == ["fetch_failed"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--limit", "0"], "--limit must be 1 or more"),
        (["--threshold", "11"], "--threshold must be between 0 and 10"),
        (["--model", "anything"], "invalid choice"),
    ],
)
def test_the_command_refuses_bad_values_and_starts_no_run(db, args, message):
    import io

    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=message):
        call_command("rank_poi_images", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert not RankingRun.objects.exists()


def test_the_command_refuses_a_duplicate_of_a_run_still_going(make_poi, commons_server):
    import io

    from django.core.management.base import CommandError

    first = queued_run(make_poi, ["Busy"])
    with pytest.raises(CommandError, match=f"Run {first.pk} for the same POIs is still going"):
        call_command("rank_poi_images", stdout=io.StringIO(), stderr=io.StringIO())
