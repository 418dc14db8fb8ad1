"""Run and item timestamps are the database's clock, so the sweep is right whatever each
host's clock says.

A host's clock skew is simulated by patching `django.utils.timezone.now` (what Django,
Django-Q and the app read) to the real time ± 10 minutes for the phase of the test that plays
that host: the worker, the sweeper, the `--sync` process, the web server. The database's clock
(SQLite's C clock, the PostgreSQL server's) is not affected by that patch.

The module runs on the suite's SQLite database, and again on PostgreSQL in a child pytest
(`test_the_same_on_postgresql`, under `scripts/with_postgres.sh`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone
from django_q.models import OrmQ

from image_ranking import dbclock
from image_ranking.models import RankingRun, RankingRunItem
from image_ranking.pipeline.outcome import Decision
from image_ranking.pipeline.ranking import Outcome as PoiOutcome
from image_ranking.review import live
from image_ranking.runs import items as run_items
from image_ranking.runs import service as runs
from image_ranking.runs import sweep
from tests.conftest import REPO_ROOT
from tests.postgres import server_url

pytestmark = [pytest.mark.django_db, pytest.mark.processes]
Outcome = RankingRunItem.Outcome

SKEW = timedelta(minutes=10)
BEHIND, ON_TIME, AHEAD = -SKEW, timedelta(0), SKEW
CLOCKS = {"behind": BEHIND, "on time": ON_TIME, "ahead": AHEAD}
SHORT_TIMEOUT = 2  # s: items that outlive it (and the grace) are lost, after a short sleep
SHORT_GRACE = timedelta(seconds=0.2)


@pytest.fixture(autouse=True)
def on_the_database_asked_for():
    """The PostgreSQL child run must really be on PostgreSQL."""
    assert connection.vendor == os.environ.get("CLOCK_TESTS_VENDOR", connection.vendor)


@pytest.fixture
def host_clock(monkeypatch):
    """host_clock(offset): this process's clock is `offset` off the real time from now on."""
    real_now = timezone.now
    monkeypatch.setattr(dbclock, "_offset", dbclock._offset)  # measured under skew: restored

    def set_clock(offset: timedelta) -> None:
        monkeypatch.setattr(timezone, "now", lambda: real_now() + offset)

    return set_clock


@pytest.fixture
def short_timeout(settings, monkeypatch):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": SHORT_TIMEOUT}
    monkeypatch.setattr(sweep, "GRACE", SHORT_GRACE)


def wait_past_the_timeout() -> None:
    time.sleep(SHORT_TIMEOUT + SHORT_GRACE.total_seconds() + 0.3)


def queued_run(make_poi, name: str) -> RankingRun:
    """A run of one POI, its task in the broker (as while a worker holds it)."""
    poi = make_poi(name)
    return runs.start_run(poi_ids=[poi.pk])


def item_of(run: RankingRun) -> RankingRunItem:
    return RankingRunItem.objects.get(run=run)


# --- The timestamps ---------------------------------------------------------------------------


def test_run_and_item_timestamps_are_the_database_clock_whatever_the_host_says(
    make_poi, host_clock
):
    host_clock(AHEAD)
    run = queued_run(make_poi, "Stamped")
    poi_id = item_of(run).poi_id
    run_items.start_item(run.pk, poi_id)
    run_items.record_item(run.pk, poi_id, Outcome.RANKED)  # update_or_create, update path
    other = make_poi("Not in the run at first")
    run_items.record_item(run.pk, other.pk, Outcome.FLAGGED)  # update_or_create, create path
    db_now = dbclock.now()
    run.refresh_from_db()
    assert run.status == RankingRun.Status.FINISHED
    stamps = [run.created_at, run.started_at, run.finished_at]
    stamps += [t for i in run.items.all() for t in (i.started_at, i.finished_at) if t]
    assert len(stamps) == 3 + 3
    for stamp in stamps:
        assert timezone.is_aware(stamp)
        # SQLite rounds Now() to the millisecond: a stamp may be up to 0.5 ms "later"
        assert -timedelta(milliseconds=5) < db_now - stamp < timedelta(seconds=30), stamp


def test_database_stamps_compare_with_python_datetimes_and_with_now_minus_a_delta(make_poi):
    """SQLite stores `Now()` as 'YYYY-MM-DD HH:MM:SS.fff' text and Python datetimes as
    'YYYY-MM-DD HH:MM:SS[.ffffff]': both sort as the times they are, on either database."""
    run = queued_run(make_poi, "Compared")
    item = item_of(run)
    run_items.start_item(run.pk, item.poi_id)
    item.refresh_from_db()
    stamp = item.started_at
    whole = stamp.replace(microsecond=0)  # a parameter without a fraction: 'HH:MM:SS'
    items = RankingRunItem.objects.filter(pk=item.pk)
    assert items.filter(started_at__gte=whole).exists()
    assert items.filter(started_at__lt=whole + timedelta(seconds=1)).exists()
    assert not items.filter(started_at__gt=stamp + timedelta(milliseconds=1)).exists()
    assert not items.filter(started_at__lt=stamp - timedelta(milliseconds=1)).exists()
    assert items.filter(started_at__gt=Now() - timedelta(seconds=30)).exists()
    assert not items.filter(started_at__lt=Now() - timedelta(seconds=30)).exists()
    assert not items.filter(started_at__gt=Now() + timedelta(seconds=1)).exists()
    assert abs(dbclock.now() - stamp) < timedelta(seconds=30)


# --- (1), (2) A live item is not lost, whatever the clocks --------------------------------------


@pytest.mark.parametrize("sweeper", CLOCKS, ids=lambda c: f"sweeper-{c.replace(' ', '-')}")
@pytest.mark.parametrize("worker", ["behind", "ahead"], ids=lambda c: f"worker-{c}")
def test_an_item_a_skewed_worker_is_ranking_is_not_lost_when_swept_at_once(
    make_poi, host_clock, monkeypatch, worker, sweeper
):
    """The worker's task runs rank_poi; while it ranks, a sweeper host sweeps the run."""
    from image_ranking.runs.tasks import rank_poi_task

    run = queued_run(make_poi, "Being ranked")
    swept = []

    def rank_while_swept(job, replace_existing, model_name):
        host_clock(CLOCKS[sweeper])
        swept.append(sweep.sweep_run(RankingRun.objects.get(pk=run.pk), force=True))
        swept.append(item_of(run).outcome)
        host_clock(CLOCKS[worker])
        return job.record(Decision(PoiOutcome.RANKED, "kept"))

    monkeypatch.setattr("image_ranking.pipeline.ranking._rank_claimed", rank_while_swept)
    host_clock(CLOCKS[worker])
    [task] = [row.task for row in OrmQ.objects.all()]
    assert rank_poi_task(*task["args"], **task["kwargs"]) == "ranked"
    assert swept == [0, Outcome.RUNNING]
    assert item_of(run).outcome == Outcome.RANKED
    assert RankingRun.objects.get(pk=run.pk).status == RankingRun.Status.FINISHED


# --- (3) A lost item is lost, whatever the clocks ----------------------------------------------


@pytest.mark.parametrize("worker", ["behind", "ahead"], ids=lambda c: f"worker-{c}")
def test_an_item_older_than_the_timeout_on_the_database_clock_is_lost_whatever_the_clocks(
    make_poi, host_clock, short_timeout, worker
):
    """A worker starts the item and dies; once its age on the database's clock is past the
    timeout and the grace, a sweeper on any clock records it lost (one run per sweeper)."""
    host_clock(CLOCKS[worker])
    started = {}
    for sweeper in CLOCKS:
        run = queued_run(make_poi, f"Killed worker, swept {sweeper}")
        assert run_items.start_item(run.pk, item_of(run).poi_id)
        started[sweeper] = run
    # Still within the timeout, by every sweeper's clock.
    for sweeper, run in started.items():
        host_clock(CLOCKS[sweeper])
        assert sweep.sweep_run(run, force=True) == 0, sweeper
    wait_past_the_timeout()
    for sweeper, run in started.items():
        host_clock(CLOCKS[sweeper])
        assert sweep.sweep_run(run, force=True) == 1, sweeper
        item = item_of(run)
        assert item.outcome == Outcome.FAILED and "exceeded the task timeout" in item.reason


# --- (4) The same for a --sync run ---------------------------------------------------------------


class ProcessDied(BaseException):
    """The `--sync` process stops (SIGKILL, a closed terminal): nothing after it runs."""


def sync_run(make_poi, name: str, monkeypatch, ranks) -> RankingRun:
    """start_run(sync=True) of two POIs with `ranks(poi_id, run_id)` as the per-POI task."""
    ids = [make_poi(f"{name} {i}").pk for i in (1, 2)]
    monkeypatch.setattr(
        "image_ranking.runs.tasks.rank_poi_task",
        lambda poi_id, run_id=None, **options: ranks(poi_id, run_id),
    )
    with contextlib.suppress(ProcessDied):
        runs.start_run(poi_ids=ids, sync=True)
    return RankingRun.objects.filter(items__poi_id=ids[0]).first()


@pytest.mark.parametrize("sweeper", CLOCKS, ids=lambda c: f"sweeper-{c.replace(' ', '-')}")
@pytest.mark.parametrize("process", ["behind", "ahead"], ids=lambda c: f"process-{c}")
def test_a_live_sync_run_is_not_stalled_whatever_the_clocks(
    make_poi, host_clock, monkeypatch, process, sweeper
):
    swept = []

    def rank_and_be_swept(poi_id, run_id):
        run_items.start_item(run_id, poi_id)
        host_clock(CLOCKS[sweeper])
        swept.append(sweep.sweep_run(RankingRun.objects.get(pk=run_id), force=True))
        host_clock(CLOCKS[process])
        run_items.record_item(run_id, poi_id, Outcome.RANKED)

    host_clock(CLOCKS[process])
    run = sync_run(make_poi, "Sync", monkeypatch, rank_and_be_swept)
    assert swept == [0, 0]
    assert run.status == RankingRun.Status.FINISHED and run.tally().ranked == 2


@pytest.mark.parametrize("process", ["behind", "ahead"], ids=lambda c: f"process-{c}")
def test_a_stalled_sync_run_is_swept_whatever_the_clocks(
    make_poi, host_clock, monkeypatch, short_timeout, process
):
    def start_then_die(poi_id, run_id):
        run_items.start_item(run_id, poi_id)
        raise ProcessDied

    host_clock(CLOCKS[process])
    dead = {sweeper: sync_run(make_poi, sweeper, monkeypatch, start_then_die) for sweeper in CLOCKS}
    for sweeper, run in dead.items():
        host_clock(CLOCKS[sweeper])
        assert sweep.sweep_run(run, force=True) == 0, sweeper  # not yet
    wait_past_the_timeout()
    for sweeper, run in dead.items():
        host_clock(CLOCKS[sweeper])
        assert sweep.sweep_run(run, force=True) == 2, sweeper
        run.refresh_from_db()
        assert run.status == RankingRun.Status.FINISHED and run.tally().failed == 2
        assert {i.reason for i in run.items.all()} == {"the process ranking this run stopped"}


# --- (5) The swept_at throttle ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [("ahead", "behind"), ("behind", "ahead"), ("on time", "ahead"), ("ahead", "on time")],
    ids=lambda c: c.replace(" ", "-"),
)
def test_the_sweep_throttle_holds_across_skewed_hosts(
    make_poi, host_clock, monkeypatch, first, second
):
    """A host's sweep throttles every host for SWEEP_INTERVAL on the database's clock: not
    less (a host ahead would sweep at every poll), not more (a sweep by a host ahead would
    silence the others for as long as it is ahead)."""
    monkeypatch.setattr(sweep, "SWEEP_INTERVAL", timedelta(seconds=0.5))
    run = queued_run(make_poi, "Throttled")
    long_ago = timezone.now() - timedelta(hours=1)  # and nothing has moved since
    RankingRun.objects.filter(pk=run.pk).update(created_at=long_ago)
    run.refresh_from_db()
    host_clock(CLOCKS[first])
    assert sweep.sweep_run(run) == 0  # swept: nothing lost yet
    OrmQ.objects.all().delete()  # now its task is gone
    host_clock(CLOCKS[second])
    assert sweep.sweep_run(run) == 0  # a moment later: throttled
    assert item_of(run).outcome == Outcome.PENDING
    time.sleep(0.7)
    assert sweep.sweep_run(run) == 1  # past the interval: swept
    assert item_of(run).outcome == Outcome.FAILED


# --- The dashboard's ETA ----------------------------------------------------------------------


@pytest.mark.parametrize("web", ["behind", "ahead"], ids=lambda c: f"web-{c}")
def test_the_eta_measures_the_elapsed_time_on_the_database_clock(
    make_poi, host_clock, settings, web
):
    settings.WIKIMEDIA_RATE_PER_HOUR = 0  # the pace is the measured one
    first, second = make_poi("First"), make_poi("Second")
    run = runs.start_run(poi_ids=[first.pk, second.pk])
    run_items.start_item(run.pk, first.pk)
    run_items.record_item(run.pk, first.pk, Outcome.RANKED)
    # Started 30 s ago on the database's clock, one POI of two done: about 30 s left.
    RankingRun.objects.filter(pk=run.pk).update(started_at=Now() - timedelta(seconds=30))
    run.refresh_from_db()
    host_clock(CLOCKS[web])  # the web server's
    sweep.sweep_run(run)  # the poll sweeps first, reading the database's clock
    progress = live.progress_of(run, run.tally())
    assert progress.processed == 1
    assert 29 <= progress.eta_seconds < 60  # not 30 s ± the 10 min of the web host's clock


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
def test_the_same_on_postgresql():
    """This module again, in a child pytest whose database is PostgreSQL."""
    url = server_url()
    if os.environ.get("CLOCK_TESTS_VENDOR"):
        pytest.skip("this is the child run")
    env = {
        **os.environ,
        # pytest-django creates and drops test_<name> (through the maintenance database).
        "DATABASE_URL": f"{url.rpartition('/')[0]}/clocks_{uuid.uuid4().hex[:12]}",
        "CLOCK_TESTS_VENDOR": "postgresql",
    }
    child = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider",
         "-m", "not postgres"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    output = child.stdout[-4000:] + child.stderr[-2000:]
    assert child.returncode == 0, output
    assert " passed" in output and "skipped" not in output and "failed" not in output, output
