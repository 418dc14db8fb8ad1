"""End the items that can no longer finish, so every run ends.

An item is lost when its task
- ended in Django-Q without recording it (a timeout, a crash, dropped after max_attempts):
  Django-Q saved a result, the item is still open;
- is gone from the broker without a result;
- has been running for longer than the task timeout (its worker was SIGKILLed; should the
  broker hand the task out again later, that delivery records the real outcome over this);
- or, in a run ranked in one process (`--sync`), that process stopped making progress.

Lost items are recorded as failed with the reason, and their POIs flagged when they have no
real image, like any other failure. Whoever notices first sweeps: a worker when it starts
(so a cluster restarted after a SIGKILL cleans up at once), the dashboard's progress poll,
the Prefect task's wait, and a Django-Q schedule every minute.

Every time here is the DATABASE's clock: items and runs are stamped with `Now()` by whoever
writes them, the `swept_at` claim is one UPDATE comparing with `Now()`, and ages are measured
from one `dbclock.now()` per sweep. Hosts whose clocks are minutes apart therefore agree on
which item has run too long: none is declared lost while its worker still ranks it, none
noticed late.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Max, Q
from django.db.models.functions import Now

from image_ranking import dbclock
from image_ranking.models import OPEN_OUTCOMES, RankingRun, RankingRunItem
from image_ranking.runs import queue
from image_ranking.runs.service import finish_if_done, task_group

logger = logging.getLogger(__name__)

SWEEP_INTERVAL = timedelta(seconds=10)  # a poll every 2 s sweeps at most this often
GRACE = timedelta(seconds=15)  # beyond the task timeout, for the worker to record its outcome
Outcome = RankingRunItem.Outcome


def task_timeout() -> timedelta:
    return timedelta(seconds=int(settings.Q_CLUSTER.get("timeout", 300)))


def sweep_run(run: RankingRun, *, force: bool = False) -> int:
    """Record the run's lost items as failed and end the run if nothing is left; returns how
    many items it ended. Without `force`, at most once per SWEEP_INTERVAL per run."""
    if not run.is_active:
        return 0
    if not force:  # written and compared in one statement on the database's clock
        claimed = RankingRun.objects.filter(pk=run.pk).filter(
            Q(swept_at__isnull=True) | Q(swept_at__lt=Now() - SWEEP_INTERVAL)
        )
        if not claimed.update(swept_at=Now()):
            return 0
    now = dbclock.now()  # one reading for every age below
    open_items = list(
        RankingRunItem.objects.filter(run=run, outcome__in=OPEN_OUTCOMES).only(
            "pk", "poi_id", "outcome", "task_id", "started_at"
        )
    )
    lost = _lost_items(run, open_items, now)
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
    run: RankingRun, items: list[RankingRunItem], now
) -> list[tuple[RankingRunItem, str]]:
    timeout = task_timeout()
    lost: list[tuple[RankingRunItem, str]] = []
    queued = [i for i in items if i.task_id]
    results = queue.task_results(i.task_id for i in queued) if queued else {}
    in_broker: set[str] | None = None
    for item in queued:
        result = results.get(item.task_id)
        if result is not None:
            lost.append((item, _why_task_ended(result)))
            continue
        if item.outcome == Outcome.RUNNING and item.started_at < now - timeout - GRACE:
            lost.append((item, f"exceeded the task timeout ({timeout.seconds} s); worker lost"))
            continue
        if in_broker is None:  # decoding the broker's rows costs: only when needed
            in_broker = queue.queued_task_ids(task_group(run.pk))
        if item.task_id not in in_broker:
            lost.append((item, "its task is gone from the queue"))
    in_process = [i for i in items if not i.task_id]
    if in_process and _stalled(run, now - timeout - GRACE):
        lost += [(i, "the process ranking this run stopped") for i in in_process]
    return lost


def _why_task_ended(result: queue.TaskResult) -> str:
    if result.success:
        return "its task ended without recording the POI"
    first = (result.result.strip().splitlines() or ["no result"])[0]
    if "timeout" in first.lower():
        return f"exceeded the task timeout: {first}"[:300]
    return f"its task failed: {first}"[:300]


def _stalled(run: RankingRun, before) -> bool:
    """No item of the run started or finished since `before` (and the run is older)."""
    latest = RankingRunItem.objects.filter(run=run).aggregate(
        started=Max("started_at"), finished=Max("finished_at")
    )
    moments = [m for m in (latest["started"], latest["finished"], run.created_at) if m]
    return max(moments) < before


def _fail(run: RankingRun, item: RankingRunItem, reason: str) -> None:
    from image_ranking.pipeline.ranking import record_lost

    changed = RankingRunItem.objects.filter(pk=item.pk, outcome__in=OPEN_OUTCOMES).update(
        outcome=Outcome.FAILED, reason=reason[:500], finished_at=Now()
    )
    if changed:  # not recorded meanwhile by its own task
        record_lost(item.poi_id, run.pk, reason)
