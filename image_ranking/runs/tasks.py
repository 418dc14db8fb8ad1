"""Django-Q task functions: thin wrappers around `rank_poi` that never let one POI stop a run.

Retries are safe because `rank_poi` claims the POI (a second delivery while the first still
works is skipped; a dead worker's claim goes stale after the task timeout) and counts each
POI once per run.
"""

from __future__ import annotations

import logging

from image_ranking.pipeline.ranking import Outcome, rank_poi, record_unexpected_failure

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
    except Exception as exc:
        logger.exception("Ranking POI %s failed unexpectedly", poi_id)
        record_unexpected_failure(poi_id, run_id, exc)
        outcome = Outcome.FAILED
    return str(outcome)
