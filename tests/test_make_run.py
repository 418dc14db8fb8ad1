"""scripts/run.sh (what `make run` starts): a busy port is an error, the URL comes once it listens,
development mode with one secret key for the web server and the cluster.

The script runs for real, with the project's virtualenv, on a migrated temporary database.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

RUN_SH = REPO_ROOT / "scripts" / "run.sh"

pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(
        not (REPO_ROOT / ".venv" / "bin" / "python").exists(), reason="run.sh uses .venv/bin/python"
    ),
]


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
    subprocess.run(  # as `make migrate` does, in development mode
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=REPO_ROOT,
        env={**env, "DJANGO_DEBUG": "1"},
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


def environ_of(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in entries if b"=" in entry)


def task_queued_from_another_terminal(environment: dict[str, str]) -> str:
    """What `manage.py rank_poi_images` does in a second terminal: queue a Django-Q task,
    signed with the key this development process reads."""
    code = "from django_q.tasks import async_task; print(async_task('math.floor', 2.5))"
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v0", "-c", code],
        cwd=REPO_ROOT,
        env={**environment, "DJANGO_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def ran_successfully(database: str, task_id: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with sqlite3.connect(database, timeout=10) as db:
            row = db.execute(
                "SELECT success FROM django_q_task WHERE id = ?", (task_id,)
            ).fetchone()
        if row is not None:
            return bool(row[0])
        time.sleep(0.5)
    return False


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
        # As from a terminal's foreground: a suite started in the background (`&`) has SIGINT
        # ignored, and bash cannot trap a signal ignored when it started.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
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
        started = processes_using(environment["SQLITE_PATH"])
        servers = [
            pid for pid in started if b"manage.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(servers) >= 2  # web server and cluster (and the cluster's workers)
        # Development mode, with no key in the environment: each reads var/secret-key ...
        assert all(environ_of(pid).get("DJANGO_DEBUG") == "1" for pid in servers)
        assert not any("DJANGO_SECRET_KEY" in environ_of(pid) for pid in servers)
        key_file = REPO_ROOT / "var" / "secret-key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        # ... so a task signed by another process of the checkout runs in the cluster.
        task_id = task_queued_from_another_terminal(environment)
        assert ran_successfully(environment["SQLITE_PATH"], task_id, within=30)

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


def make_exports(variable: str, **env: str) -> str:
    """The value the Makefile gives `variable` in the environment of what it starts."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MAKE"))}
    done = subprocess.run(
        ["make", "-s", f"--eval=show: ; @printenv {variable} || true", "show"],
        cwd=REPO_ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def test_make_starts_everything_in_development_mode_unless_told_otherwise():
    assert make_exports("DJANGO_DEBUG") == "1"
    assert make_exports("DJANGO_DEBUG", DJANGO_DEBUG="0") == "0"
