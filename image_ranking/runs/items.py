"""The life of a run's items: started, recorded, and the run ended when none is open.

Every timestamp is the DATABASE's clock (`Now()` in the statement), never this host's: the
sweep, on any host, compares them with the database's clock (see image_ranking.dbclock).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models.functions import Now

from image_ranking.models import OPEN_OUTCOMES, RankingRun, RankingRunItem

Outcome = RankingRunItem.Outcome


def task_group(run_id: int) -> str:
    return f"ranking-run-{run_id}"


def mark_started(run_id: int) -> None:
    """The first task to start moves the run from queued to running."""
    RankingRun.objects.filter(pk=run_id, status=RankingRun.Status.QUEUED).update(
        status=RankingRun.Status.RUNNING, started_at=Now()
    )


def start_item(run_id: int, poi_id: int) -> bool:
    """Mark the POI's item running; False when it must not run: its run was cancelled (or
    ended), or the item has ended already (recorded by an earlier delivery of the same task).

    One transaction holding the run's row lock, which `cancel_run` takes too: an item either
    starts before a cancel (and finishes, recorded) or never starts after it."""
    with transaction.atomic():
        run = RankingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or not run.is_active:
            return False
        if run.status == RankingRun.Status.QUEUED:
            RankingRun.objects.filter(pk=run_id).update(
                status=RankingRun.Status.RUNNING, started_at=Now()
            )
        item, _ = RankingRunItem.objects.get_or_create(run_id=run_id, poi_id=poi_id)
        # A failed item is worth another delivery (the sweep may have called a slow task
        # lost); any other ended item is done.
        if item.is_final and item.outcome != Outcome.FAILED:
            return False
        RankingRunItem.objects.filter(pk=item.pk).update(
            outcome=Outcome.RUNNING, started_at=Now(), finished_at=None
        )
        return True


def record_item(run_id: int, poi_id: int, outcome: str, reason: str = "") -> None:
    """Insert or update the POI's item with its outcome, then end the run if it was the last."""
    RankingRunItem.objects.update_or_create(
        run_id=run_id,
        poi_id=poi_id,
        defaults={"outcome": outcome, "reason": reason[:500], "finished_at": Now()},
    )
    finish_if_done(run_id)


def finish_if_done(run_id: int) -> bool:
    """End the run once no item is open; one conditional UPDATE, so exactly one of the tasks
    finishing at the same moment does it."""
    if RankingRunItem.objects.filter(run_id=run_id, outcome__in=OPEN_OUTCOMES).exists():
        return False
    changed = RankingRun.objects.filter(pk=run_id, status__in=RankingRun.ACTIVE).update(
        status=RankingRun.Status.FINISHED, finished_at=Now(), active_key=None
    )
    return bool(changed)


def end_run(run: RankingRun, status: str, message: str = "") -> None:
    RankingRun.objects.filter(pk=run.pk).update(
        status=status, finished_at=Now(), message=message[:500], active_key=None
    )
    run.refresh_from_db()
