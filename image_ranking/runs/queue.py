"""What Django-Q knows about a run's tasks: still in the broker, or ended with a result.

The ORM broker keeps a task's row (signed, pickled) until the task is acknowledged, which
happens after its result is saved; so a task that is in neither place is gone for good.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django_q.models import OrmQ, Task


@dataclass(frozen=True)
class TaskResult:
    success: bool
    result: str
    attempts: int


def queued_task_ids(group: str) -> set[str]:
    """Ids of the group's tasks still in the broker (waiting, or handed to a worker)."""
    return {row.task.get("id", "") for row in _rows() if row.task.get("group") == group}


def delete_queued_tasks(group: str) -> int:
    """Remove the group's tasks that no worker has taken yet; returns how many."""
    from django.utils import timezone

    rows = [row.pk for row in _rows(lock__lte=timezone.now()) if row.task.get("group") == group]
    deleted, _ = OrmQ.objects.filter(pk__in=rows).delete()
    return deleted


def task_results(task_ids: Iterable[str]) -> dict[str, TaskResult]:
    """Saved results of the given tasks (Django-Q saves failures, timeouts included)."""
    rows = Task.objects.filter(id__in=list(task_ids)).values_list(
        "id", "success", "result", "attempt_count"
    )
    return {
        tid: TaskResult(bool(success), str(result or ""), int(attempts or 0))
        for tid, success, result, attempts in rows
    }


def _rows(**filters) -> Iterable[OrmQ]:
    return OrmQ.objects.filter(**filters).only("pk", "payload").iterator(chunk_size=500)
