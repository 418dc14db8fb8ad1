"""Ranking runs: choose the POIs, record the run and one item per POI, enqueue one Django-Q
task per POI, end the run when every item is recorded, or cancel it.

The dashboard, the Prefect flow and the management command all start runs through
`start_run`, so the items and the finishing rule are the same whoever asked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.db.models.functions import Now

from cities.models import City, PointOfInterest
from image_ranking.models import (
    OPEN_OUTCOMES,
    RankablePoi,
    RankingRun,
    RankingRunItem,
    Scope,
)

logger = logging.getLogger(__name__)

ENQUEUE_BATCH = 50
TASK_PATH = "image_ranking.runs.tasks.rank_poi_task"
ProgressCallback = Callable[[int, int], None]
Outcome = RankingRunItem.Outcome


class RunAlreadyActive(Exception):
    """A run for the same POIs (scope and city, or the same single POI) is still going."""

    def __init__(self, run: RankingRun) -> None:
        super().__init__(f"Run {run.pk} for the same POIs is still going.")
        self.run = run


def select_pois(
    scope: str = Scope.MISSING,
    *,
    city: City | str | int | None = None,
    poi_ids: Iterable[int] | None = None,
    limit: int | None = None,
) -> QuerySet[PointOfInterest]:
    """POIs in at least one list; scope "missing" = without a real image (none, or only the
    category fallback). `city` may be a City, its pk or its name (case-insensitive)."""
    if scope not in Scope.values:
        raise ValueError(f"unknown scope {scope!r}; use one of {', '.join(Scope.values)}")
    pois = RankablePoi.objects.in_lists().in_city(city)
    if poi_ids is not None:
        pois = pois.filter(pk__in=list(poi_ids))
    if scope == Scope.MISSING:
        pois = pois.missing()
    pois = pois.order_by("city_id", "category", "rank", "pk")
    if limit is not None:
        pois = pois[: max(0, int(limit))]
    return pois


def active_key(scope: str, city: City | None, poi_ids: list[int] | None) -> str:
    """What makes two active runs duplicates: the same single POI, or scope + city."""
    if poi_ids is not None and len(poi_ids) == 1:
        return f"poi:{poi_ids[0]}"
    if poi_ids is not None:
        return ""  # an explicit set of POIs (tests, tools): never a duplicate of another
    return f"{scope}:{city.pk if city else '*'}"


def start_run(
    *,
    scope: str = Scope.MISSING,
    city: City | str | int | None = None,
    poi_ids: Iterable[int] | None = None,
    threshold: float | None = None,
    replace_existing: bool = False,
    limit: int | None = None,
    user: Any = None,
    sync: bool = False,
    progress: ProgressCallback | None = None,
    model_name: str | None = None,
) -> RankingRun:
    """Record a run and its items, then rank them: queued as Django-Q tasks, or here (`sync`).

    Raises RunAlreadyActive when a run for the same POIs is still going (checked atomically
    by a unique key, after the sweep has ended any run that can no longer finish).
    `progress(done, total)` is called after each POI ranked (sync) or each batch of 50 tasks
    enqueued (queued)."""
    from image_ranking.runs.sweep import sweep_run

    id_list = None if poi_ids is None else list(poi_ids)
    ids = list(
        select_pois(scope, city=city, poi_ids=id_list, limit=limit).values_list("pk", flat=True)
    )
    city_obj = _city_object(city)
    key = active_key(scope, city_obj, id_list)
    if key:
        for holder in RankingRun.objects.filter(active_key=key):
            sweep_run(holder, force=True)  # a dead run must not block a new one
    try:
        with transaction.atomic():
            run = RankingRun.objects.create(
                kind=RankingRun.Kind.POI if key.startswith("poi:") else RankingRun.Kind.BATCH,
                scope=scope,
                city=city_obj,
                threshold=threshold,
                replace_existing=replace_existing,
                model_name=model_name or "",
                active_key=key or None,
                created_by=user if getattr(user, "is_authenticated", False) else None,
            )
            # auto_now_add wrote this host's clock: the database's instead, like every run and
            # item time (the sweep compares it for a --sync run that has not started an item).
            RankingRun.objects.filter(pk=run.pk).update(created_at=Now())
            RankingRunItem.objects.bulk_create(
                [RankingRunItem(run=run, poi_id=poi_id) for poi_id in ids], batch_size=500
            )
    except IntegrityError:
        holder = RankingRun.objects.filter(active_key=key).first()
        if holder is None:  # it ended between our insert and this look-up
            return start_run(
                scope=scope, city=city, poi_ids=id_list, threshold=threshold,
                replace_existing=replace_existing, limit=limit, user=user, sync=sync,
                progress=progress, model_name=model_name,
            )  # fmt: skip
        raise RunAlreadyActive(holder) from None
    logger.info("Run %s: %d POIs (scope %s, city %s)", run.pk, len(ids), scope, city_obj)
    if not ids:
        end_run(run, RankingRun.Status.FINISHED, "No POIs to rank.")
        return run
    options = {
        "threshold": threshold,
        "replace_existing": replace_existing,
        "run_id": run.pk,
        "model_name": model_name,
    }
    if sync:
        _rank_here(run, ids, options, progress)
    else:
        _enqueue(ids, options, run, progress)
    run.refresh_from_db()
    return run


def _rank_here(
    run: RankingRun, ids: list[int], options: dict[str, Any], progress: ProgressCallback | None
) -> None:
    from image_ranking.runs.tasks import rank_poi_task  # late: loads the scorer stack

    mark_started(run.pk)
    try:
        for done, poi_id in enumerate(ids, start=1):
            rank_poi_task(poi_id, **options)
            if progress is not None:
                progress(done, len(ids))
    except KeyboardInterrupt:
        cancel_run(run, reason="interrupted (Ctrl-C)")
        raise


def _enqueue(
    ids: list[int],
    options: dict[str, Any],
    run: RankingRun,
    progress: ProgressCallback | None = None,
) -> None:
    """One task per POI, handed to the broker in batches of 50, each item learning its task
    id in the same transaction (the sweep looks tasks up by it); `progress(enqueued, total)`
    after each batch."""
    from django_q.tasks import async_task

    items = dict(RankingRunItem.objects.filter(run=run).values_list("poi_id", "pk"))
    for start in range(0, len(ids), ENQUEUE_BATCH):
        batch = ids[start : start + ENQUEUE_BATCH]
        with transaction.atomic():  # one commit per batch: short write locks, fast inserts
            rows = []
            for poi_id in batch:
                task_id = async_task(
                    TASK_PATH,
                    poi_id,
                    **options,
                    group=task_group(run.pk),
                    task_name=f"rank-poi-{poi_id}-run-{run.pk}",
                )
                rows.append(RankingRunItem(pk=items[poi_id], task_id=task_id))
            RankingRunItem.objects.bulk_update(rows, ["task_id"])
        logger.info("Run %s: enqueued %d/%d", run.pk, start + len(batch), len(ids))
        if progress is not None:
            progress(start + len(batch), len(ids))


def task_group(run_id: int) -> str:
    return f"ranking-run-{run_id}"


def _city_object(city: City | str | int | None) -> City | None:
    if city is None or isinstance(city, City):
        return city
    if isinstance(city, int):
        return City.objects.filter(pk=city).first()
    return City.objects.filter(name__iexact=str(city)).first()


# --- The life of a run and its items ---------------------------------------------------------
# Every timestamp is the DATABASE's clock (`Now()` in the statement), never this host's: the
# sweep, on any host, compares them with the database's clock (see image_ranking.dbclock).


def mark_started(run_id: int) -> None:
    """The first task to start moves the run from queued to running."""
    RankingRun.objects.filter(pk=run_id, status=RankingRun.Status.QUEUED).update(
        status=RankingRun.Status.RUNNING, started_at=Now()
    )


def start_item(run_id: int, poi_id: int) -> bool:
    """Mark the POI's item running; False when it has already ended (cancelled, or recorded
    by an earlier delivery of the same task) and the work is not to be done again."""
    mark_started(run_id)
    item, _ = RankingRunItem.objects.get_or_create(run_id=run_id, poi_id=poi_id)
    # A failed item is worth another delivery (the sweep may have called a slow task lost);
    # any other ended item is done.
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


def cancel_run(run: RankingRun, *, user: Any = None, reason: str = "") -> int:
    """Stop a run: its queued tasks leave the broker, its items not yet started end as
    cancelled; a POI being ranked right now finishes and is recorded. Returns how many items
    were cancelled."""
    from image_ranking.runs.queue import delete_queued_tasks

    who = getattr(user, "get_username", lambda: "")() if user is not None else ""
    why = reason or f"cancelled by {who or 'a curator'}"
    with transaction.atomic():
        cancelled = RankingRunItem.objects.filter(run=run, outcome=Outcome.PENDING).update(
            outcome=Outcome.CANCELLED, reason=why[:500], finished_at=Now()
        )
        RankingRun.objects.filter(pk=run.pk, status__in=RankingRun.ACTIVE).update(
            status=RankingRun.Status.CANCELLED,
            finished_at=Now(),
            active_key=None,
            message=f"Cancelled: {why}"[:500],
        )
    removed = delete_queued_tasks(task_group(run.pk))
    logger.info("Run %s %s: %d items cancelled, %d tasks removed", run.pk, why, cancelled, removed)
    run.refresh_from_db()
    return cancelled


def run_result(run: RankingRun) -> dict[str, Any]:
    """The original project's result-dict pattern (the command's JSON line, Prefect's result).

    `status` of a finished run: "failed" when every POI it processed failed, "partial" when
    some did, "success" otherwise (a run with no POIs too). Else the run's own status:
    "queued" or "running" (not finished yet), "cancelled"."""
    run.refresh_from_db()
    tally = run.tally()
    status = str(run.status)
    if run.status == RankingRun.Status.FINISHED:
        if tally.failed and tally.failed == tally.processed:
            status = "failed"
        else:
            status = "partial" if tally.failed else "success"
    return {
        "status": status,
        "message": run.message
        or f"{tally.processed}/{tally.total} POIs processed ({run.get_scope_display().lower()})",
        "processed_count": tally.processed,
        "updated_count": tally.updated,
        "flagged_count": tally.flagged,
        "failed_count": tally.failed,
        "total": tally.total,
        "run_id": run.pk,
    }
