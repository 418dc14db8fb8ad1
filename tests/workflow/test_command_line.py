"""`manage.py import_city` runs the flow with no Prefect server configured."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys

import httpx
import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.processes


@pytest.mark.slow
def test_command_line_runs_the_flow_without_a_prefect_server(
    migrated_template, tmp_path, export_file
):
    database = tmp_path / "cli.sqlite3"
    shutil.copyfile(migrated_template, database)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        SQLITE_PATH=str(database),
        MEDIA_ROOT=str(tmp_path / "media"),
        PREFECT_HOME=str(tmp_path / "prefect-home"),  # its own temporary server database
    )
    completed = subprocess.run(
        [sys.executable, "manage.py", "import_city", str(export_file), "--no-wait"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout)
    assert result["import"]["pois"] == 8
    assert result["image_ranking"]["enqueued_count"] == 6
    assert result["image_ranking"]["status"] == "queued"
    assert completed.stderr.count("Starting temporary Prefect server") == 1  # no server given
    # Each thing said once: not by Django's handler and Prefect's too, nor by both the import
    # service and the flow (which logs it in its run log).
    assert completed.stderr.count("Imported ") == 1, completed.stderr
    assert completed.stderr.count("Beginning flow run") == 1
    assert (
        "jobs enqueued" in completed.stderr and "Enqueued [image_ranking]" not in completed.stderr
    )
    assert "View at" not in completed.stderr  # the temporary server has no UI
    url = re.search(r"Starting temporary Prefect server on (\S+)", completed.stderr)[1]
    with pytest.raises(httpx.TransportError):  # stopped at exit
        httpx.get(f"{url}/api/health", timeout=2)
    rows = _query(database, "SELECT count(*) FROM django_q_ormq")
    assert rows == [(6,)]


def test_command_line_against_a_prefect_server_reports_a_missing_file_with_status_1(
    migrated_template, tmp_path
):
    from prefect.settings import PREFECT_API_URL

    database = tmp_path / "cli.sqlite3"
    shutil.copyfile(migrated_template, database)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    # The session's test server stands in for `prefect server start`.
    env.update(SQLITE_PATH=str(database), PREFECT_API_URL=PREFECT_API_URL.value())
    completed = subprocess.run(
        [sys.executable, "manage.py", "import_city", str(tmp_path / "nope.json")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert completed.returncode == 1, completed.stderr[-3000:]
    assert "Starting temporary" not in completed.stderr
    result = json.loads(completed.stdout)
    assert result["import"]["status"] == "error"
    assert "cannot read file" in result["import"]["message"]
    assert _query(database, "SELECT count(*) FROM cities_city") == [(0,)]


def _query(database, sql):
    with sqlite3.connect(database) as connection:
        return connection.execute(sql).fetchall()
