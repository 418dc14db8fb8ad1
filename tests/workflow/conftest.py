"""Fixtures for the Prefect flow tests: a Prefect test server, a file database, a Django-Q worker.

Why a file database: the flow, its thread-sensitive ORM thread and the Django-Q worker threads
all use the database at once. pytest-django's SQLite test database lives in memory with a
shared cache, where concurrent connections fail at once with "database table is locked"
instead of waiting; a WAL file database behaves like the deployment's.

Why Django-Q in threads: `ThreadCluster` runs Django-Q's own `pusher`, `worker` and `monitor`
functions (the ones a `qcluster` process runs in its child processes) against the real ORM
broker, so the jobs are dequeued from the database, executed and saved as Django-Q results,
exactly as in the cluster; only the process management is left out. A `qcluster` subprocess
would need its own database settings, model directory and Commons URL passed in the
environment and forks a scoring model per worker; threads share this process's settings and
its loaded scorer, and stop deterministically.
"""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing import Value
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connections

from tests.conftest import REPO_ROOT

LISBON_EXPORT = REPO_ROOT / "cities" / "fixtures" / "demo" / "lisbon.json"


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server (a subprocess with its own SQLite) for all flow tests;
    its telemetry is off, since tests never reach the internet."""
    from prefect.settings import PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        temporary_settings(updates={PREFECT_SERVER_ANALYTICS_ENABLED: False}),
        prefect_test_harness(server_startup_timeout=60),
    ):
        yield


# --- A file database in place of the in-memory test database -----------------------------------


def _replace_thread_connection(settings_dict: dict[str, Any]) -> Any:
    """Give the calling thread a fresh connection made from `settings_dict`; return the old."""
    old = connections["default"]
    connections.settings["default"] = settings_dict
    connections["default"] = connections.create_connection("default")
    return old


def _restore_thread_connection(old: Any) -> None:
    connections["default"].close()
    connections["default"] = old


def _in_orm_thread(func: Callable[..., Any], *args: Any) -> Any:
    """Run `func` in asgiref's thread-sensitive thread, where the flow's ORM calls run."""

    async def call() -> Any:
        return await sync_to_async(func, thread_sensitive=True)(*args)

    return asyncio.run(call())


@contextmanager
def database_file(path: Path) -> Iterator[None]:
    """Point every thread of this process at the SQLite file `path`, then back."""
    old_dict = connections.settings["default"]
    new_dict = {**old_dict, "NAME": str(path), "TEST": {**old_dict.get("TEST", {})}}
    old_settings = django_settings.DATABASES["default"]
    django_settings.DATABASES["default"] = new_dict
    main_old = _replace_thread_connection(new_dict)
    orm_old = _in_orm_thread(_replace_thread_connection, new_dict)
    try:
        yield
    finally:
        _in_orm_thread(_restore_thread_connection, orm_old)
        _restore_thread_connection(main_old)
        connections.settings["default"] = old_dict
        django_settings.DATABASES["default"] = old_settings


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory, django_db_blocker) -> Path:
    path = tmp_path_factory.mktemp("workflow-db") / "template.sqlite3"
    with django_db_blocker.unblock(), database_file(path):
        call_command("migrate", verbosity=0, interactive=False)
    return path


@pytest.fixture
def file_db(migrated_template, tmp_path, django_db_blocker) -> Iterator[Path]:
    """A migrated, empty SQLite file database of this test's own, used by every thread."""
    path = tmp_path / "db.sqlite3"
    shutil.copyfile(migrated_template, path)
    with django_db_blocker.unblock(), database_file(path):
        yield path


# --- Django-Q's worker functions in threads ------------------------------------------------------


def _closing_connections(func: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any) -> None:
        try:
            func(*args)
        finally:
            connections.close_all()

    return run


class ThreadCluster:
    """Django-Q's pusher -> workers -> monitor pipeline, in threads of this process."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self.tasks: queue.Queue = queue.Queue()
        self.results: queue.Queue = queue.Queue()
        self.stop_pushing = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> ThreadCluster:
        from django_q.monitor import monitor
        from django_q.pusher import pusher
        from django_q.worker import worker

        def thread(name: str, target: Callable[..., Any], *args: Any) -> threading.Thread:
            t = threading.Thread(
                target=_closing_connections(target), args=args, name=name, daemon=True
            )
            t.start()
            return t

        self.pusher = thread("q-pusher", pusher, self.tasks, self.stop_pushing)
        self.worker_threads = [
            thread(f"q-worker-{i}", worker, self.tasks, self.results, Value("f", -1))
            for i in range(self.workers)
        ]
        self.monitor = thread("q-monitor", monitor, self.results)
        return self

    def stop(self, timeout: float = 30) -> None:
        self.stop_pushing.set()
        self.pusher.join(timeout)
        for _ in self.worker_threads:
            self.tasks.put("STOP")
        for t in self.worker_threads:
            t.join(timeout)
        self.results.put("STOP")
        self.monitor.join(timeout)
        alive = [t.name for t in (self.pusher, *self.worker_threads, self.monitor) if t.is_alive()]
        assert not alive, f"Django-Q threads did not stop: {alive}"


@pytest.fixture
def q_cluster(file_db) -> Iterator[ThreadCluster]:
    cluster = ThreadCluster().start()
    yield cluster
    cluster.stop()


# --- City exports --------------------------------------------------------------------------------


def small_export(directory: Path, in_lists: int = 6, outside: int = 2) -> Path:
    """A Lisbon export cut down to `in_lists` POIs in two overlapping lists and `outside`
    POIs in no list (facts only, from the demo fixture)."""
    data = json.loads(LISBON_EXPORT.read_text())
    listed_names: list[str] = []
    by_name = {poi["name"]: poi for poi in data["points_of_interest"]}
    for poi_list in data["poi_lists"]:
        for poi in poi_list["pois"]:
            if poi["name"] not in listed_names:
                listed_names.append(poi["name"])
    chosen = [by_name[name] for name in listed_names[:in_lists]]
    others = [p for p in data["points_of_interest"] if p["name"] not in listed_names][:outside]
    first, second = data["poi_lists"][0], data["poi_lists"][1]
    half = (in_lists + 1) // 2
    data["points_of_interest"] = chosen + others
    data["poi_lists"] = [
        {**first, "pois": chosen[:half]},
        {**second, "pois": chosen[half - 1 :]},  # one POI in both lists: still one job
    ]
    path = directory / "lisbon-small.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def export_file(tmp_path) -> Path:
    return small_export(tmp_path)
