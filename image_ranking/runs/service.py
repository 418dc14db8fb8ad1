"""Ranking runs: choose the POIs, record the run, enqueue one Django-Q task per POI.

The dashboard, the Prefect flow and the management command all start runs through
`start_run`, so progress counters and the finishing rule are the same whoever asked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from cities.models import City, PointOfInterest
from image_ranking.models import RankingRun, Scope

logger = logging.getLogger(__name__)

ENQUEUE_BATCH = 50
TASK_PATH = "image_ranking.runs.tasks.rank_poi_task"
ProgressCallback = Callable[[int, int], None]


def select_pois(
    scope: str = Scope.MISSING,
    *,
    city: City | str | int | None = None,
    poi_ids: Iterable[int] | None = None,
    limit: int | None = None,
) -> QuerySet[PointOfInterest]:
    """POIs in at least one list; "missing" = without an image or with only a fallback image.

    `city` may be a City, its pk or its name (case-insensitive).
    """
    if scope not in Scope.values:
        raise ValueError(f"unknown scope {scope!r}; use one of {', '.join(Scope.values)}")
    pois = PointOfInterest.objects.filter(lists__isnull=False)
    if city is not None:
        if isinstance(city, City):
            pois = pois.filter(city=city)
        elif isinstance(city, int):
            pois = pois.filter(city_id=city)
        else:
            pois = pois.filter(city__name__iexact=str(city))
    if poi_ids is not None:
        pois = pois.filter(pk__in=list(poi_ids))
    if scope == Scope.MISSING:
        pois = pois.filter(
            Q(image_file__isnull=True) | Q(image_file="") | Q(ranking__uses_fallback=True)
        )
    pois = pois.distinct().order_by("city_id", "category", "rank", "pk")
    if limit is not None:
        pois = pois[: max(0, int(limit))]
    return pois


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
    """Record a run and rank its POIs: queued as Django-Q tasks, or here when `sync`.

    `progress(done, total)` is called after each POI ranked (sync) or each batch of 50 tasks
    enqueued (async)."""
    ids = list(
        select_pois(scope, city=city, poi_ids=poi_ids, limit=limit).values_list("pk", flat=True)
    )
    city_obj = _city_object(city)
    run = RankingRun.objects.create(
        scope=scope,
        city=city_obj,
        threshold=threshold,
        replace_existing=replace_existing,
        model_name=model_name or "",
        total=len(ids),
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    logger.info("Run %s: %d POIs (scope %s, city %s)", run.pk, len(ids), scope, city_obj)
    if not ids:
        _finish(run, "No POIs to rank.")
        return run
    options = {
        "threshold": threshold,
        "replace_existing": replace_existing,
        "run_id": run.pk,
        "model_name": model_name,
    }
    if sync:
        RankingRun.objects.filter(pk=run.pk).update(
            status=RankingRun.Status.RUNNING, started_at=timezone.now()
        )
        from image_ranking.runs.tasks import rank_poi_task  # late: ranking loads the scorer stack

        for done, poi_id in enumerate(ids, start=1):
            rank_poi_task(poi_id, **options)
            if progress is not None:
                progress(done, len(ids))
    else:
        _enqueue(ids, options, run, progress)
    run.refresh_from_db()
    return run


def _enqueue(
    ids: list[int],
    options: dict[str, Any],
    run: RankingRun,
    progress: ProgressCallback | None = None,
) -> None:
    """One task per POI, handed to the broker in batches of 50; `progress(enqueued, total)`
    after each batch."""
    from django_q.tasks import async_task

    for start in range(0, len(ids), ENQUEUE_BATCH):
        batch = ids[start : start + ENQUEUE_BATCH]
        with transaction.atomic():  # one commit per batch: short write locks, fast inserts
            for poi_id in batch:
                async_task(
                    TASK_PATH,
                    poi_id,
                    **options,
                    group=f"ranking-run-{run.pk}",
                    task_name=f"rank-poi-{poi_id}-run-{run.pk}",
                )
        logger.info("Run %s: enqueued %d/%d", run.pk, start + len(batch), len(ids))
        if progress is not None:
            progress(start + len(batch), len(ids))


def _city_object(city: City | str | int | None) -> City | None:
    if city is None or isinstance(city, City):
        return city
    if isinstance(city, int):
        return City.objects.filter(pk=city).first()
    return City.objects.filter(name__iexact=str(city)).first()


def _finish(run: RankingRun, message: str = "") -> None:
    RankingRun.objects.filter(pk=run.pk).update(
        status=RankingRun.Status.FINISHED, finished_at=timezone.now(), message=message[:500]
    )
    run.refresh_from_db()


def mark_started(run_id: int) -> None:
    """The first task to start moves the run from queued to running."""
    RankingRun.objects.filter(pk=run_id, status=RankingRun.Status.QUEUED).update(
        status=RankingRun.Status.RUNNING, started_at=timezone.now()
    )


def finish_if_done(run_id: int) -> bool:
    """Mark the run finished once every POI is processed; one conditional UPDATE, so exactly
    one of the tasks finishing at the same moment does it."""
    from django.db.models import F

    changed = RankingRun.objects.filter(
        pk=run_id,
        status__in=[RankingRun.Status.QUEUED, RankingRun.Status.RUNNING],
        processed__gte=F("total"),
    ).update(status=RankingRun.Status.FINISHED, finished_at=timezone.now())
    return bool(changed)


def run_result(run: RankingRun) -> dict[str, Any]:
    """The original project's result-dict pattern (the command's JSON line, Prefect's result)."""
    run.refresh_from_db()
    return {
        "status": "success" if run.status == RankingRun.Status.FINISHED else str(run.status),
        "message": run.message
        or f"{run.processed}/{run.total} POIs processed ({run.get_scope_display().lower()})",
        "processed_count": run.processed,
        "updated_count": run.updated,
        "flagged_count": run.flagged,
        "failed_count": run.failed,
        "total": run.total,
        "run_id": run.pk,
    }
