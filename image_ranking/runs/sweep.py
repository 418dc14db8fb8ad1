"""End the items that can no longer finish, so every run ends.

An item is lost when
- it has been running for longer than the task timeout (its worker was SIGKILLed; should the
  broker hand the task out again later, that delivery records the real outcome over this);
- it is running and its task ended in Django-Q without recording it (a timeout, a crash):
  Django-Q saved a result;
- or, once the whole cluster has made no progress for longer than a task may take (or when
  someone asks to start a run for the same POIs): its task ended with a result before it
  could start, or left the broker without one; or, in a run ranked in one process (`--sync`),
  that process stopped.

Cost: a sweep reads the run's own rows through indexes, plus Django-Q's rows by primary key
(task id, broker row id): the running items (at most a few per worker) every time, the
waiting ones only when nothing has moved for a task timeout. It never decodes the broker's
payloads, so it costs the same with 10 or 100,000 tasks queued.

Lost items are recorded as failed with the reason, and their POIs recorded as failed (flagged
when they have no real image) under the POI's claim, like any other failure. Whoever notices
first sweeps: a worker when it starts (so a cluster restarted after a SIGKILL cleans up at
once), the dashboard's progress poll, the Prefect task's wait, and a Django-Q schedule every
minute.

Every time here is the DATABASE's clock: items and runs are stamped with `Now()` by whoever
writes them, the `swept_at` claim is one UPDATE comparing with `Now()`, and ages are measured
from one `dbclock.now()` per sweep. Hosts whose clocks are minutes apart therefore agree on
which item has run too long: none is declared lost while its worker still ranks it, none
noticed late.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, Max, OuterRef, Q, QuerySet
from django.db.models.functions import Now

from image_ranking import dbclock
from image_ranking.models import OPEN_OUTCOMES, RankingRun, RankingRunItem
from image_ranking.pipeline import outcome
from image_ranking.runs import queue
from image_ranking.runs.items import finish_if_done

logger = logging.getLogger(__name__)

SWEEP_INTERVAL = timedelta(seconds=10)  # a poll every 2 s sweeps at most this often
GRACE = timedelta(seconds=15)  # beyond the task timeout, for the worker to record its outcome
Outcome = RankingRunItem.Outcome


def task_timeout() -> timedelta:
    return timedelta(seconds=int(settings.Q_CLUSTER.get("timeout", 300)))


def sweep_run(run: RankingRun, *, force: bool = False) -> int:
    """Record the run's lost items as failed and end the run if nothing is left; returns how
    many items it ended. Without `force`, at most once per SWEEP_INTERVAL per run, and the
    run's waiting items are looked at only once nothing has moved for a task timeout; with
    `force` (someone asks to start a run for the same POIs) they are looked at now."""
    if not run.is_active:
        return 0
    if not force:  # written and compared in one statement on the database's clock
        claimed = RankingRun.objects.filter(pk=run.pk).filter(
            Q(swept_at__isnull=True) | Q(swept_at__lt=Now() - SWEEP_INTERVAL)
        )
        if not claimed.update(swept_at=Now()):
            return 0
    now = dbclock.now()  # one reading for every age below
    lost = _lost_items(run, now, thorough=force)
    for item, reason in lost:
        _fail(run, item, reason)
    finish_if_done(run.pk)
    if lost:
        logger.warning("Run %s: %d lost item(s) recorded as failed", run.pk, len(lost))
    return len(lost)


def sweep_active_runs() -> int:
    """Sweep every active run (the periodic schedule and a worker's start-up)."""
    return sum(sweep_run(run) for run in RankingRun.objects.filter(status__in=RankingRun.ACTIVE))


def _lost_items(
    run: RankingRun, now: datetime, *, thorough: bool
) -> list[tuple[RankingRunItem, str]]:
    timeout = task_timeout()
    too_old = now - timeout - GRACE
    items = RankingRunItem.objects.filter(run=run).only(
        "pk", "poi_id", "outcome", "task_id", "started_at"
    )
    running = items.filter(outcome=Outcome.RUNNING)
    lost = [
        (item, f"exceeded the task timeout ({timeout.seconds} s); worker lost")
        if item.task_id
        else (item, "the process ranking this run stopped")
        for item in running.filter(started_at__lt=too_old)
    ]
    seen = {item.pk for item, _ in lost}
    lost += [(i, why) for i, why in _ended_without_recording(running) if i.pk not in seen]
    waiting = items.filter(outcome=Outcome.PENDING)
    in_process = waiting.filter(task_id="")  # a --sync run: no tasks
    if in_process.exists():
        if _run_quiet_since(run, too_old):
            lost += [(i, "the process ranking this run stopped") for i in in_process]
    elif thorough or (_cluster_idle_since(too_old) and _run_quiet_since(run, too_old)):
        ended = _ended_without_recording(waiting.exclude(task_id=""))
        lost += ended
        seen = {item.pk for item, _ in ended}
        gone = waiting.exclude(broker_id=None).exclude(
            Exists(queue.queued_rows().filter(pk=OuterRef("broker_id")))
        )
        lost += [(i, "its task is gone from the queue") for i in gone if i.pk not in seen]
    return lost


def _ended_without_recording(
    items: QuerySet[RankingRunItem],
) -> list[tuple[RankingRunItem, str]]:
    """Open items whose task Django-Q saved a result for: it ended without recording them."""
    results = queue.results().filter(id=OuterRef("task_id"))
    rows = items.annotate(
        task_success=results.values("success")[:1], task_result=results.values("result")[:1]
    ).filter(Exists(results))
    return [(item, _why_task_ended(item.task_success, item.task_result)) for item in rows]


def _why_task_ended(success: bool, result: object) -> str:
    if success:
        return "its task ended without recording the POI"
    first = (str(result or "").strip().splitlines() or ["no result"])[0]
    if "timeout" in first.lower():
        return f"exceeded the task timeout: {first}"[:300]
    return f"its task failed: {first}"[:300]


def _cluster_idle_since(moment: datetime) -> bool:
    """No item of any run started or finished since `moment`: nothing is working. (While
    other items move, a waiting one is just waiting its turn; indexed look-ups.)"""
    recent = Q(started_at__gte=moment) | Q(finished_at__gte=moment)
    return not RankingRunItem.objects.filter(recent).exists()


def _run_quiet_since(run: RankingRun, moment: datetime) -> bool:
    """The run itself is older than `moment` and none of its items moved since."""
    latest = RankingRunItem.objects.filter(run=run).aggregate(
        started=Max("started_at"), finished=Max("finished_at")
    )
    moments = [m for m in (latest["started"], latest["finished"], run.created_at) if m]
    return max(moments) < moment


def _fail(run: RankingRun, item: RankingRunItem, reason: str) -> None:
    changed = RankingRunItem.objects.filter(pk=item.pk, outcome__in=OPEN_OUTCOMES).update(
        outcome=Outcome.FAILED, reason=reason[:500], finished_at=Now()
    )
    if changed:  # not recorded meanwhile by its own task
        outcome.fail(item.poi_id, f"run {run.pk}: {reason}")
