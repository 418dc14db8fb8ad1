"""Prefect flow `import_city`: load a city export, then rank the images of its POIs in lists.

This is the design card's third entry point to the ranking jobs, in the original project's
style: an async flow whose steps are small `async def _step(..., result) -> result` helpers.
Each helper runs Django ORM code and sync services through `sync_to_async(...,
thread_sensitive=True)` (Django's ORM must not run on the event loop, and one thread keeps one
connection) and records its outcome under its own key of the shared result dict.

Importing this module has no side effect; it needs Django set up, as every module with models
does. The command line is `manage.py import_city` (workflow/management/commands/), served
deployments start from `workflow.served`.

The original flow's other steps (Wikivoyage import, confirmation pause, geocoding, duplicate
merging, OSM ID lookup from a PBF file) need services this project does not have; they live in
the original city_wiki project. There the ranking step runs after the OSM ID lookup.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections
from prefect import flow, get_run_logger, task
from prefect.task_runners import ThreadPoolTaskRunner

from cities.models import City
from cities.services.city_import import CityExportError, import_city_export_file
from image_ranking.models import RankingRun, Scope
from image_ranking.runs import service as runs
from image_ranking.runs.sweep import sweep_run

# 500 Commons API requests per hour (the anonymous default) rank ~370 POIs in ~45 minutes;
# a bigger city or a busy queue needs more, so the default leaves generous headroom.
DEFAULT_TIMEOUT = 4 * 3600.0
POLL_INTERVAL = 2.0
BATCH_SIZE = 50  # progress is logged after every BATCH_SIZE POIs (the spec's batches of 50)


class RankingTimeoutError(TimeoutError):
    """The ranking run did not finish in time; its jobs stay queued and keep running."""


class ImportCityError(RuntimeError):
    """A step of `import_city` failed; `result` holds what the flow had recorded so far."""

    def __init__(self, step: str, message: str, result: dict[str, Any]) -> None:
        super().__init__(f"import_city step {step!r} failed: {message}")
        self.step = step
        self.result = result


def _db(func: Any) -> Any:
    """ORM and sync services run in Django's one thread-sensitive thread, off the event loop."""
    return sync_to_async(func, thread_sensitive=True)


# --- The ranking task -------------------------------------------------------------------------


def _progress_line(run: RankingRun) -> str:
    tally = run.tally()
    return (
        f"run {run.pk}: {tally.processed}/{tally.total} POIs processed "
        f"({tally.updated} updated, {tally.flagged} flagged, {tally.failed} failed)"
    )


def _poll(run: RankingRun) -> RankingRun:
    """Refresh the run, sweeping its lost items first (a dead task must not keep it open)."""
    run.refresh_from_db()
    sweep_run(run)
    run.refresh_from_db()
    return run


async def _wait_for_run(
    run: RankingRun, *, timeout: float, poll_interval: float, batch_size: int, logger: Any
) -> RankingRun:
    """Poll the run's progress record until it finishes; log after every `batch_size` POIs."""
    deadline = time.monotonic() + timeout
    logged_batches = 0
    while True:
        run = await _db(_poll)(run)
        tally = await _db(run.tally)()
        batches = tally.processed // batch_size
        if batches > logged_batches:
            logged_batches = batches
            logger.info("Image ranking %s", await _db(_progress_line)(run))
        if not run.is_active:
            return run
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RankingTimeoutError(
                f"Image ranking run {run.pk} did not finish within {timeout:g} s: "
                f"{tally.processed}/{tally.total} POIs processed. Is a Django-Q cluster running "
                "(`python manage.py qcluster`)? The queued jobs stay queued and will still run; "
                "follow the run on /image-ranking/, or run the flow with --inline where no "
                "cluster is available."
            )
        await asyncio.sleep(min(poll_interval, remaining))


@task(name="rank_poi_images_for_lists")
async def rank_poi_images_for_lists(
    city_name: str,
    scope: str = Scope.MISSING,
    threshold: float | None = None,
    batch_size: int = BATCH_SIZE,
    wait: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    inline: bool = False,
    poll_interval: float = POLL_INTERVAL,
) -> dict[str, Any]:
    """Rank the images of a city's POIs in lists: one Django-Q job per POI.

    `scope` "missing" ranks POIs without an image; "all" also re-scores POIs that have one
    (their image is kept). With `wait` the task polls the run until every job is done and
    raises RankingTimeoutError after `timeout` seconds; `inline` runs the jobs here, one after
    the other, for deployments without a Django-Q cluster.
    """
    logger = get_run_logger()
    if scope not in Scope.values:
        raise ValueError(f"unknown scope {scope!r}; use one of {', '.join(Scope.values)}")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    city = await _db(City.objects.filter(name=city_name).first)()
    if city is None:
        raise ValueError(f"city {city_name!r} does not exist; import it first")

    def log_progress(done: int, total: int) -> None:
        # Inline: called after every POI, logged every `batch_size`. Queued: called after
        # every enqueued batch, where start_run reports it.
        if inline and done % batch_size and done != total:
            return
        what = "POIs ranked in-process" if inline else "jobs enqueued"
        logger.info("Image ranking: %d/%d %s", done, total, what)

    try:
        run = await _db(runs.start_run)(
            scope=scope, city=city, threshold=threshold, sync=inline, progress=log_progress
        )
        joined = False
    except runs.RunAlreadyActive as exc:  # the same POIs are being ranked: follow that run
        run, joined = exc.run, True
        logger.info("Image ranking: %s Waiting for it instead of starting another.", exc)
    total = (await _db(run.tally)()).total
    if inline and not joined:
        logger.info("Image ranking finished in-process: %s", await _db(_progress_line)(run))
    else:
        if not joined:
            logger.info(
                "Image ranking run %s: %d POIs in lists of %s (scope %s), %d jobs enqueued "
                "in %d batch(es) of %d",
                run.pk,
                total,
                city.name,
                scope,
                total,
                -(-total // runs.ENQUEUE_BATCH),
                runs.ENQUEUE_BATCH,
            )
        if wait:
            run = await _wait_for_run(
                run,
                timeout=timeout,
                poll_interval=poll_interval,
                batch_size=batch_size,
                logger=logger,
            )
            logger.info("Image ranking finished: %s", await _db(_progress_line)(run))
    outcome = await _db(runs.run_result)(run)
    outcome["scope"] = scope
    outcome["enqueued_count"] = 0 if inline or joined else total
    return outcome


# --- Flow steps -------------------------------------------------------------------------------


async def _import_city_export(export_file: str, result: dict[str, Any]) -> dict[str, Any]:
    """Step 1: create or update the city from its export (the `import_city_export` service)."""
    logger = get_run_logger()
    try:
        summary = await _db(import_city_export_file)(export_file)
    except Exception as exc:
        message = str(exc) if isinstance(exc, CityExportError) else f"{type(exc).__name__}: {exc}"
        result["import"] = {"status": "error", "message": message}
        logger.error("City import failed: %s", message)
        raise ImportCityError("import", message, result) from exc
    result["city"] = summary.city
    result["import"] = {"status": "success", "message": summary.as_text(), **asdict(summary)}
    logger.info("Imported %s", summary.as_text())
    return result


async def _rank_poi_images(
    city_name: str, options: dict[str, Any], result: dict[str, Any]
) -> dict[str, Any]:
    """Last step (after the OSM ID lookup in the full original flow): rank POI images."""
    logger = get_run_logger()
    try:
        outcome = await rank_poi_images_for_lists(city_name, **options)
    except Exception as exc:
        # A timeout, an unknown city or scope, or a deployment fault such as a missing model
        # (inline): recorded, then the flow fails with the reason.
        message = (
            str(exc) if isinstance(exc, RankingTimeoutError) else f"{type(exc).__name__}: {exc}"
        )
        result["image_ranking"] = {"status": "error", "message": message}
        logger.error("Image ranking failed: %s", message)
        raise ImportCityError("image_ranking", message, result) from exc
    result["image_ranking"] = outcome
    logger.info(
        "Image ranking %s: %s processed, %s updated, %s flagged, %s failed",
        outcome["status"],
        outcome["processed_count"],
        outcome["updated_count"],
        outcome["flagged_count"],
        outcome["failed_count"],
    )
    return result


def _close_connections() -> None:
    connections.close_all()


@flow(name="import_city", task_runner=ThreadPoolTaskRunner(max_workers=4))
async def import_city(
    export_file: str,
    rank_images: bool = True,
    scope: str = Scope.MISSING,
    threshold: float | None = None,
    wait: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    inline: bool = False,
    poll_interval: float = POLL_INTERVAL,
    batch_size: int = BATCH_SIZE,
) -> dict[str, Any]:
    """Import a city export, then rank the images of its POIs in lists."""
    result: dict[str, Any] = {"export_file": str(export_file)}
    try:
        result = await _import_city_export(str(export_file), result)
        # Wikivoyage import, geocoding, duplicates and the OSM ID lookup belong here in the
        # original project; this project imports finished exports instead.
        if rank_images:
            options = {
                "scope": scope,
                "threshold": threshold,
                "wait": wait,
                "timeout": timeout,
                "inline": inline,
                "poll_interval": poll_interval,
                "batch_size": batch_size,
            }
            result = await _rank_poi_images(result["city"], options, result)
        return result
    finally:
        # A long-lived Prefect process must not keep idle connections in the shared thread.
        await _db(_close_connections)()
