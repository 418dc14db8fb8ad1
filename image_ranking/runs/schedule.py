"""When the sweep runs besides the dashboard's poll and the Prefect wait: every minute as a
Django-Q schedule, and whenever a cluster's worker starts."""

from __future__ import annotations

import logging

from django.db import close_old_connections
from django_q.models import Schedule

from image_ranking.runs.sweep import sweep_active_runs

logger = logging.getLogger(__name__)

SWEEP_SCHEDULE = "image-ranking-sweep"
SWEEP_TASK = "image_ranking.runs.tasks.sweep_runs_task"


def ensure_sweep_schedule(**kwargs) -> None:
    """post_migrate: the periodic sweep exists once, whatever the number of migrations."""
    Schedule.objects.update_or_create(
        name=SWEEP_SCHEDULE,
        defaults={"func": SWEEP_TASK, "schedule_type": Schedule.MINUTES, "minutes": 1},
    )


def sweep_on_spawn(sender=None, proc_name: str = "", **kwargs) -> None:
    """post_spawn (in the new worker process): sweep active runs; never stop the worker."""
    try:
        close_old_connections()
        ended = sweep_active_runs()
        if ended:
            logger.warning("%s: ended %d lost item(s) at start-up", proc_name, ended)
    except Exception:
        logger.exception("Sweep at worker start-up failed")
