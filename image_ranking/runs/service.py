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
    Candidate,
    RankablePoi,
    RankingRun,
    RankingRunItem,
    Scope,
)
from image_ranking.runs import queue, tasks
from image_ranking.runs.items import end_run, mark_started, task_group
from image_ranking.runs.sweep import sweep_run

logger = logging.getLogger(__name__)

ENQUEUE_BATCH = 50
TASK_PATH = "image_ranking.runs.tasks.rank_poi_task"
USE_TASK_PATH = "image_ranking.runs.tasks.use_candidate_task"
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
    mark_started(run.pk)
    try:
        for done, poi_id in enumerate(ids, start=1):
            tasks.rank_poi_task(poi_id, **options)
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
    id and broker row in the same transaction (the sweep looks them up by these);
    `progress(enqueued, total)` after each batch."""
    items = dict(RankingRunItem.objects.filter(run=run).values_list("poi_id", "pk"))
    for start in range(0, len(ids), ENQUEUE_BATCH):
        batch = ids[start : start + ENQUEUE_BATCH]
        with transaction.atomic():  # one commit per batch: short write locks, fast inserts
            rows = []
            for poi_id in batch:
                task_id, broker_id = queue.enqueue(
                    TASK_PATH,
                    poi_id,
                    **options,
                    group=task_group(run.pk),
                    task_name=f"rank-poi-{poi_id}-run-{run.pk}",
                )
                rows.append(RankingRunItem(pk=items[poi_id], task_id=task_id, broker_id=broker_id))
            RankingRunItem.objects.bulk_update(rows, ["task_id", "broker_id"])
        logger.info("Run %s: enqueued %d/%d", run.pk, start + len(batch), len(ids))
        if progress is not None:
            progress(start + len(batch), len(ids))


def start_use(candidate: Candidate, *, user: Any = None) -> RankingRun:
    """A curator's "Use this image" whose download must wait for Commons: a one-POI run
    (`Kind.USE`) whose task stores the candidate, followed by the POI's card like a re-rank.
    Raises RunAlreadyActive while a run of that POI is going."""
    key = active_key(Scope.ALL, None, [candidate.poi_id])
    for holder in RankingRun.objects.filter(active_key=key):
        sweep_run(holder, force=True)
    try:
        with transaction.atomic():
            run = RankingRun.objects.create(
                kind=RankingRun.Kind.USE,
                scope=Scope.ALL,
                candidate=candidate,
                active_key=key,
                created_by=user if getattr(user, "is_authenticated", False) else None,
            )
            RankingRun.objects.filter(pk=run.pk).update(created_at=Now())
            item = RankingRunItem.objects.create(run=run, poi_id=candidate.poi_id)
            task_id, broker_id = queue.enqueue(
                USE_TASK_PATH,
                candidate.pk,
                run_id=run.pk,
                group=task_group(run.pk),
                task_name=f"use-candidate-{candidate.pk}-run-{run.pk}",
            )
            RankingRunItem.objects.filter(pk=item.pk).update(task_id=task_id, broker_id=broker_id)
    except IntegrityError:
        holder = RankingRun.objects.filter(active_key=key).first()
        if holder is None:
            return start_use(candidate, user=user)
        raise RunAlreadyActive(holder) from None
    run.refresh_from_db()
    return run


def _city_object(city: City | str | int | None) -> City | None:
    if city is None or isinstance(city, City):
        return city
    if isinstance(city, int):
        return City.objects.filter(pk=city).first()
    return City.objects.filter(name__iexact=str(city)).first()


def cancel_run(run: RankingRun, *, user: Any = None, reason: str = "") -> int:
    """Stop a run: its items not yet started end as cancelled and their tasks leave the
    broker; a POI being ranked right now finishes and is recorded. Returns how many items
    were cancelled. Holds the run's row lock, as `start_item` does, so no item starts after
    this returns."""
    who = getattr(user, "get_username", lambda: "")() if user is not None else ""
    why = reason or f"cancelled by {who or 'a curator'}"
    with transaction.atomic():
        RankingRun.objects.select_for_update().filter(pk=run.pk).first()
        pending = RankingRunItem.objects.filter(run=run, outcome=Outcome.PENDING)
        broker_ids = list(pending.exclude(broker_id=None).values_list("broker_id", flat=True))
        cancelled = pending.update(outcome=Outcome.CANCELLED, reason=why[:500], finished_at=Now())
        RankingRun.objects.filter(pk=run.pk, status__in=RankingRun.ACTIVE).update(
            status=RankingRun.Status.CANCELLED,
            finished_at=Now(),
            active_key=None,
            message=f"Cancelled: {why}"[:500],
        )
    removed = queue.delete_queued(broker_ids)
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
