"""scripts/run.sh (what `make run` starts): a busy port is an error, the URL comes once it listens.

The script runs for real, with the project's virtualenv, on a migrated temporary database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

RUN_SH = REPO_ROOT / "scripts" / "run.sh"

pytestmark = pytest.mark.skipif(
    not (REPO_ROOT / ".venv" / "bin" / "python").exists(), reason="run.sh uses .venv/bin/python"
)


@pytest.fixture(scope="module")
def environment(tmp_path_factory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("make-run")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "RUN_"))}
    env.update(
        SQLITE_PATH=str(directory / "db.sqlite3"),
        MEDIA_ROOT=str(directory / "media"),
        DJANGO_SUPERUSER_PASSWORD="not-the-real-one",  # leaves var/staff-password alone
        STOP_TIMEOUT="5",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def processes_using(database: str) -> list[int]:
    """The processes started with this test's database (the web server, the cluster...)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and database.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def test_a_busy_port_is_an_error_before_anything_starts(environment):
    with socket.socket() as other_app:
        other_app.bind(("127.0.0.1", 0))
        other_app.listen()
        port = other_app.getsockname()[1]
        done = subprocess.run(
            [str(RUN_SH)],
            env={**environment, "RUN_ADDR": f"127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert done.returncode != 0
    assert f"127.0.0.1:{port}" in done.stderr and "already in use" in done.stderr
    output = done.stdout + done.stderr
    assert "http://" not in output and "Dashboard" not in output
    assert "password" not in output and "not-the-real-one" not in output
    assert processes_using(environment["SQLITE_PATH"]) == []


def test_the_url_comes_once_the_server_listens_and_a_signal_stops_both(environment):
    port = free_port()
    started = time.monotonic()
    script = subprocess.Popen(
        [str(RUN_SH)],
        env={**environment, "RUN_ADDR": f"127.0.0.1:{port}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches it
    )
    try:
        lines = []
        for line in script.stdout:
            lines.append(line)
            if line.startswith("Dashboard:"):
                assert answers(port), "the URL was printed before the server listened"
                break
            assert time.monotonic() - started < 60, "".join(lines)
        else:
            pytest.fail("run.sh ended without printing the URL:\n" + "".join(lines))
        output = "".join(lines)
        assert output.count("Dashboard:") == 1
        assert f"http://127.0.0.1:{port}/image-ranking/" in line
        assert "Staff login: username 'curator', password 'not-the-real-one'" in output
        assert len(processes_using(environment["SQLITE_PATH"])) >= 2  # web server and cluster

        os.killpg(script.pid, signal.SIGINT)  # what Ctrl-C does
        rest, _ = script.communicate(timeout=30)
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()

    assert script.returncode == 0, rest
    assert "Stopped." in rest
    assert not answers(port)
    assert processes_using(environment["SQLITE_PATH"]) == []
