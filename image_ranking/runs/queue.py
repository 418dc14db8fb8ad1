"""What the run layer asks of Django-Q's ORM broker, by row id and task id only.

Each run item keeps its task's id (`task_id`, the key of Django-Q's saved results) and its
broker row's id (`broker_id`, the OrmQ primary key, which the ORM broker returns on enqueue):
"is it still queued" and "remove it" are primary-key look-ups, and nothing here decodes the
broker's signed, pickled payloads, so their cost never grows with the length of the queue.

The ORM broker keeps a task's row until the task is acknowledged, which happens after its
result is saved; so a task that is in neither place is gone for good.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ, Task
from django_q.tasks import async_task


class _RowIdBroker(ORM):
    """The ORM broker, remembering the row id of the last task it enqueued."""

    row_id: int | None = None

    def enqueue(self, task: Any) -> Any:
        self.row_id = super().enqueue(task)
        return self.row_id


def enqueue(func: str, *args: Any, **kwargs: Any) -> tuple[str, int | None]:
    """`async_task(func, *args, **kwargs)`; returns the task id and its broker row id."""
    broker = _RowIdBroker(list_key=Conf.CLUSTER_NAME)
    task_id = async_task(func, *args, broker=broker, **kwargs)
    return task_id, broker.row_id


def delete_queued(broker_ids: QuerySet | list[int]) -> int:
    """Remove these tasks from the broker (a worker already running one finishes it, and its
    acknowledgement then finds nothing to delete); returns how many rows went."""
    deleted, _ = OrmQ.objects.filter(pk__in=broker_ids).delete()
    return deleted


def queued_rows() -> QuerySet[OrmQ]:
    """The broker's rows, for `Exists` look-ups by primary key."""
    return OrmQ.objects.all()


def results() -> QuerySet[Task]:
    """Django-Q's saved task results (it saves failures and timeouts too), by task id."""
    return Task.objects.all()
