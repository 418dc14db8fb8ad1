"""Prefect flow `import_city`: load a city export, then rank the images of its POIs in lists.

This is the design card's third entry point to the ranking jobs, in the original project's
style: an async flow whose steps are small `async def _step(..., result) -> result` helpers.
Each helper runs Django ORM code and sync services through `sync_to_async(...,
thread_sensitive=True)` (Django's ORM must not run on the event loop, and one thread keeps one
connection) and records its outcome under its own key of the shared result dict.

The original flow's other steps (Wikivoyage import, confirmation pause, geocoding, duplicate
merging, OSM ID lookup from a PBF file) need services this project does not have; they live in
the original city_wiki project. There the ranking step runs after the OSM ID lookup.

Command line (works without a Prefect server: it then starts a temporary local one):
    python -m workflow.city_import EXPORT.json [--scope missing|all] [--threshold X]
        [--no-wait] [--inline] [--timeout S] [--no-ranking]
    python -m workflow.city_import --serve import-city   # a deployment on a Prefect server
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys

import django


def _start_temporary_server() -> tuple[subprocess.Popen, str] | None:
    """Start Prefect's API server for this command-line run, before anything else loads.

    Without PREFECT_API_URL, Prefect itself would start the same temporary server when the flow
    begins: after this module's imports and its own in-process import of the server code.
    Started first, the server boots (about 5 s, plus 5 s of database migrations in a new
    PREFECT_HOME) while Django and Prefect load here: a run took 6.5-7 s instead of 9-13 s, 12-13 s
    instead of 15-16 s with a new PREFECT_HOME. `main()` waits for it to answer; it stops at
    exit. Not for --serve or --help, nor with PREFECT_API_URL set.
    """
    arguments = sys.argv[1:]
    if __name__ != "__main__" or os.environ.get("PREFECT_API_URL"):
        return None
    if any(a in ("-h", "--help") or a.startswith("--serve") for a in arguments):
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "false",
        "PREFECT__SERVER_EPHEMERAL": "1",  # what Prefect sets for its temporary server
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # must not phone home
        "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",  # the flow uses no blocks
    }
    command = [sys.executable, "-m", "uvicorn", "--factory"]
    command += ["prefect.server.api.server:create_app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "error", "--lifespan", "on"]
    server = subprocess.Popen(command, env=env)
    # At exit, after Prefect's log and event workers (registered later, so run first) have
    # sent what they hold to it.
    atexit.register(_stop_temporary_server, server)
    return server, f"http://127.0.0.1:{port}"


def _stop_temporary_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


_temporary_server = _start_temporary_server()

# Like the original: Django must be set up before any model is imported.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "city_wiki.settings")
django.setup()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import asdict  # noqa: E402
from typing import Any  # noqa: E402

from asgiref.sync import sync_to_async  # noqa: E402
from django.db import connections  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from cities.models import City  # noqa: E402
from cities.services.city_import import CityExportError, import_city_export_file  # noqa: E402
from image_ranking.models import RankingRun, Scope  # noqa: E402
from image_ranking.runs import service as runs  # noqa: E402
from image_ranking.runs.sweep import sweep_run  # noqa: E402

# 500 Commons API requests per hour (the anonymous default) rank ~370 POIs in ~45 minutes;
# a bigger city or a busy queue needs more, so the default leaves generous headroom.
DEFAULT_TIMEOUT = 4 * 3600.0
POLL_INTERVAL = 2.0
BATCH_SIZE = 50  # progress is logged after every BATCH_SIZE POIs (the spec's batches of 50)


class TemporaryServerError(RuntimeError):
    """The temporary Prefect server of a command-line run did not start."""


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


# --- Command line -----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workflow.city_import",
        description="Run the Prefect flow import_city: import a city export, then rank the "
        "images of its POIs in lists. Without PREFECT_API_URL, Prefect runs a temporary "
        "local server for this run.",
    )
    parser.add_argument("export_file", nargs="?", help="a city export (JSON)")
    parser.add_argument("--scope", choices=Scope.values, default=Scope.MISSING)
    parser.add_argument("--threshold", type=float, default=None, help="default: the setting")
    parser.add_argument(
        "--no-wait", dest="wait", action="store_false", help="enqueue the jobs and return"
    )
    parser.add_argument(
        "--inline", action="store_true", help="rank in this process (no Django-Q cluster)"
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds")
    parser.add_argument(
        "--no-ranking", dest="rank_images", action="store_false", help="import only"
    )
    parser.add_argument(
        "--serve",
        metavar="DEPLOYMENT",
        help="instead of one run: register a deployment of the flow on the Prefect server "
        "(PREFECT_API_URL) and run what it schedules until stopped",
    )
    return parser


# The project's loggers whose news the flow logs itself, in its run log: only warnings here.
_TOLD_BY_THE_FLOW = ("cities.services.city_import", "image_ranking.runs.service", "django-q")


def _each_message_once() -> None:
    """Django's LOGGING gives the project's loggers a console handler and Prefect gives the
    root logger one, so each record was printed twice (and the import summary a third time,
    by the flow). Here the project's records go to Prefect's console only."""
    if logging.getLogger().handlers:  # Prefect's console handler
        for name in ("cities", "image_ranking", "workflow"):
            logging.getLogger(name).handlers.clear()
    for name in _TOLD_BY_THE_FLOW:
        logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def _prefect_api() -> Iterator[None]:
    """Use the temporary server started with this module, once it answers."""
    if _temporary_server is None:
        yield
        return
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        PREFECT_UI_URL,
        get_current_settings,
        temporary_settings,
    )

    server, url = _temporary_server
    if get_current_settings().api.url:  # the active Prefect profile names a server: use it
        _stop_temporary_server(server)
        yield
        return
    print(f"Starting temporary Prefect server on {url} (no PREFECT_API_URL)", file=sys.stderr)
    _wait_for(server, url, max(60, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()))
    # No UI on this server, and it stops at exit: no "View at" link to it.
    with temporary_settings(updates={PREFECT_API_URL: f"{url}/api", PREFECT_UI_URL: ""}):
        yield


def _wait_for(server: subprocess.Popen, url: str, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise TemporaryServerError(
                f"the temporary Prefect server stopped (exit status {server.returncode})"
            )
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TemporaryServerError(f"the temporary Prefect server did not answer within {timeout:g} s")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.serve:
        # Served runs start in a subprocess that unpickles the flow: take it from the importable
        # module (pickled by reference), not from `__main__` (pickled by value, with Django's
        # thread-local connections, which cannot be pickled).
        from workflow.city_import import import_city as importable_flow

        importable_flow.serve(name=args.serve)
        return 0
    if not args.export_file:
        parser.error("the export file is required (unless --serve)")
    if args.timeout <= 0:
        print("--timeout must be positive", file=sys.stderr)
        return 2
    # Should Prefect start its own temporary server after all (main() called from Python):
    # that one must not phone home either.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    _each_message_once()
    try:
        with _prefect_api():
            result = asyncio.run(
                import_city(
                    args.export_file,
                    rank_images=args.rank_images,
                    scope=args.scope,
                    threshold=args.threshold,
                    wait=args.wait,
                    timeout=args.timeout,
                    inline=args.inline,
                )
            )
    except ImportCityError as exc:
        print(json.dumps(exc.result, indent=2, default=str))
        print(str(exc), file=sys.stderr)
        return 1
    except TemporaryServerError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
