"""Django-Q task functions: thin wrappers around `rank_poi` that never let one POI stop a run.

Retries are safe because `rank_poi` claims the POI (a second delivery while the first still
works is skipped; a dead worker's claim goes stale after the task timeout) and records each
POI once per run (its RankingRunItem).

Django-Q ends a task that runs past `Q_TIMEOUT` with a TimeoutException, a SystemExit that
`except Exception` never sees: it is caught here, the POI recorded as failed with that reason,
and re-raised so Django-Q still stops the worker as it means to.
"""

from __future__ import annotations

import logging

from django_q.exceptions import TimeoutException

from image_ranking.pipeline.ranking import Outcome, rank_poi, record_unexpected_failure
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
    try:
        outcome = rank_poi(
            poi_id,
            threshold=threshold,
            replace_existing=replace_existing,
            run_id=run_id,
            model_name=model_name,
        )
    except TimeoutException as exc:
        logger.error("Ranking POI %s exceeded the task timeout", poi_id)
        record_unexpected_failure(poi_id, run_id, f"exceeded the task timeout: {exc}")
        raise
    except Exception as exc:
        logger.exception("Ranking POI %s failed unexpectedly", poi_id)
        record_unexpected_failure(poi_id, run_id, f"unexpected error: {type(exc).__name__}: {exc}")
        outcome = Outcome.FAILED
    return str(outcome)


def sweep_runs_task() -> int:
    """The periodic sweep (a Django-Q schedule): end lost items of every active run."""
    return sweep_active_runs()
