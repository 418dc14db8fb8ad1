"""`manage.py import_city EXPORT.json`: run the Prefect flow `import_city` (import a city export,
then rank the images of its POIs in lists), with or without a Prefect server.

Without `PREFECT_API_URL` (and no server in the active Prefect profile) it starts Prefect's API
server for this run, before the flow module and Prefect are imported: the server boots (about
5 s, plus 5 s of database migrations in a new PREFECT_HOME) while they load, and it stops at
exit. `--serve NAME` registers a deployment on the configured server instead and runs what it
schedules until stopped.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError, CommandParser

from image_ranking.models import Scope

# The project's loggers whose news the flow logs itself, in its run log: only warnings here.
_TOLD_BY_THE_FLOW = ("cities.services.city_import", "image_ranking.runs.service", "django-q")
DEFAULT_TIMEOUT = 4 * 3600.0  # as workflow.city_import.DEFAULT_TIMEOUT (not imported: see handle)


class TemporaryServerError(RuntimeError):
    """The temporary Prefect server of a command-line run did not start."""


class Command(BaseCommand):
    help = (
        "Run the Prefect flow import_city: import a city export, then rank the images of its "
        "POIs in lists. Without PREFECT_API_URL, a temporary local Prefect server runs for it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
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

    def handle(self, *args, **options) -> None:
        if options["serve"]:
            from workflow.served import serve  # Prefect loads the deployment from that file

            serve(options["serve"])
            return
        if not options["export_file"]:
            raise CommandError("the export file is required (unless --serve)")
        if options["timeout"] <= 0:
            raise CommandError("--timeout must be positive")
        server = _start_temporary_server()
        # Imported only now, so that the server boots while Prefect loads.
        from workflow.city_import import ImportCityError, import_city

        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        _each_message_once()
        try:
            with _prefect_api(server):
                result = asyncio.run(
                    import_city(
                        options["export_file"],
                        rank_images=options["rank_images"],
                        scope=options["scope"],
                        threshold=options["threshold"],
                        wait=options["wait"],
                        timeout=options["timeout"],
                        inline=options["inline"],
                    )
                )
        except ImportCityError as exc:
            self.stdout.write(json.dumps(exc.result, indent=2, default=str))
            raise CommandError(str(exc), returncode=1) from exc
        except TemporaryServerError as exc:
            raise CommandError(str(exc), returncode=1) from exc
        self.stdout.write(json.dumps(result, indent=2, default=str))


def _start_temporary_server() -> tuple[subprocess.Popen, str] | None:
    """Prefect's API server for this run, on a free port of 127.0.0.1 (None when a server is
    configured)."""
    if os.environ.get("PREFECT_API_URL"):
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
    # Stopped at exit, after Prefect's log and event workers (registered later, so they run
    # first) have sent what they hold to it.
    atexit.register(_stop, server)
    return server, f"http://127.0.0.1:{port}"


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@contextmanager
def _prefect_api(temporary: tuple[subprocess.Popen, str] | None) -> Iterator[None]:
    """Use the temporary server, once it answers (unless the active profile names one)."""
    if temporary is None:
        yield
        return
    from prefect.settings import (  # Prefect loads late: the server boots meanwhile (above)
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        PREFECT_UI_URL,
        get_current_settings,
        temporary_settings,
    )

    server, url = temporary
    if get_current_settings().api.url:  # the active Prefect profile names a server: use it
        _stop(server)
        yield
        return
    print(f"Starting temporary Prefect server on {url} (no PREFECT_API_URL)", file=sys.stderr)
    _wait_for(server, url, max(60, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()))
    # No UI on this server, and it stops at exit: no "View at" link to it.
    with temporary_settings(updates={PREFECT_API_URL: f"{url}/api", PREFECT_UI_URL: ""}):
        yield


def _wait_for(server: subprocess.Popen, url: str, timeout: float) -> None:
    import httpx  # Prefect's HTTP client, loaded with Prefect (late, as above)

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


def _each_message_once() -> None:
    """Django's LOGGING gives the project's loggers a console handler and Prefect gives the
    root logger one, so each record was printed twice (and the import summary a third time,
    by the flow). Here the project's records go to Prefect's console only."""
    if logging.getLogger().handlers:  # Prefect's console handler
        for name in ("cities", "image_ranking", "workflow"):
            logging.getLogger(name).handlers.clear()
    for name in _TOLD_BY_THE_FLOW:
        logging.getLogger(name).setLevel(logging.WARNING)
