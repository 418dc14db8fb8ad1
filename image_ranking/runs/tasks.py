"""Django-Q task functions: start the POI's run item, run the pipeline, record the item.

The pipeline records the POI's own state under its claim, whatever happens once the claim is
taken; these wrappers record the run item, and never let one POI stop a run. Retries are safe:
`rank_poi` claims the POI (a second delivery while the first still works is skipped; a dead
worker's claim goes stale after the task timeout), and each POI counts once per run (its
RankingRunItem).

Django-Q ends a task that runs past `Q_TIMEOUT` with a TimeoutException, a SystemExit that
`except Exception` never sees: the item is recorded as failed with that reason, and the
exception re-raised so Django-Q still stops the worker as it means to.
"""

from __future__ import annotations

import logging

from django_q.exceptions import TimeoutException

from image_ranking.commons.downloads import DownloadError
from image_ranking.models import Candidate, RankingRun, RankingRunItem
from image_ranking.pipeline import choice, outcome
from image_ranking.pipeline.ranking import Outcome, PoiResult, rank_poi
from image_ranking.pipeline.storage import StorageError
from image_ranking.runs.items import record_item, start_item
from image_ranking.runs.sweep import sweep_active_runs

logger = logging.getLogger(__name__)


def rank_poi_task(
    poi_id: int,
    *,
    threshold: float | None = None,
    replace_existing: bool = False,
    run_id: int | None = None,
    model_name: str | None = None,
) -> str:
    """Rank one POI; returns the outcome's value for Django-Q's task result."""
    if run_id is not None and not start_item(run_id, poi_id):
        logger.info("POI %s: run %s was cancelled or has recorded it; not ranked", poi_id, run_id)
        return str(Outcome.SKIPPED)
    try:
        result = rank_poi(
            poi_id,
            threshold=threshold,
            replace_existing=replace_existing,
            run_id=run_id,
            model_name=model_name,
        )
    except TimeoutException as exc:
        logger.error("Ranking POI %s exceeded the task timeout", poi_id)
        _record(run_id, poi_id, PoiResult(Outcome.FAILED, f"exceeded the task timeout: {exc}"))
        raise
    except Exception as exc:  # before the POI was claimed: record it under a claim of its own
        logger.exception("Ranking POI %s failed unexpectedly", poi_id)
        reason = f"unexpected error: {type(exc).__name__}: {exc}"
        outcome.fail(poi_id, reason)
        result = PoiResult(Outcome.FAILED, reason)
    _record(run_id, poi_id, result)
    return str(result.outcome)


def use_candidate_task(candidate_id: int, *, run_id: int) -> str:
    """A curator's "Use this image" that had to wait for Commons (a `Kind.USE` run)."""
    run = RankingRun.objects.select_related("created_by").get(pk=run_id)
    candidate = Candidate.objects.filter(pk=candidate_id).first()
    poi_id = candidate.poi_id if candidate else _run_poi(run_id)
    if not start_item(run_id, poi_id):
        return str(Outcome.SKIPPED)
    if candidate is None:
        result = PoiResult(Outcome.FAILED, "the candidate is gone (a re-rank replaced it)")
    else:
        try:
            choice.use_candidate(candidate, user=run.created_by, run_id=run_id)
            result = PoiResult(Outcome.UPDATED, f"Now using {candidate.title}")
        except (choice.NotUsed, StorageError, DownloadError, ValueError) as exc:
            result = PoiResult(Outcome.FAILED, f"Could not use {candidate.title}: {exc}")
    record_item(run_id, poi_id, result.outcome, result.reason)
    return str(result.outcome)


def sweep_runs_task() -> int:
    """The periodic sweep (a Django-Q schedule): end lost items of every active run."""
    return sweep_active_runs()


def _record(run_id: int | None, poi_id: int, result: PoiResult) -> None:
    """The item's outcome; a job skipped because its own run's earlier delivery still holds
    the POI leaves the item to that delivery."""
    if run_id is None:
        return
    if result.outcome == Outcome.SKIPPED and result.held_by_run == str(run_id):
        return
    record_item(run_id, poi_id, result.outcome, result.reason)


def _run_poi(run_id: int) -> int:
    return RankingRunItem.objects.filter(run_id=run_id).values_list("poi_id", flat=True).get()
