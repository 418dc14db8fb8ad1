"""The shared limiter's faults, in real worker processes on one database (a WAL SQLite file,
or a fresh PostgreSQL database under scripts/with_postgres.sh), against the Commons stand-in
on 127.0.0.1: a SIGKILLed slot holder, bodies slower than the lease, hosts whose clocks are
minutes off, and the order in which waiters are served."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from image_ranking.commons.ratelimit.leases import LEASE_SECONDS
from image_ranking.commons.ratelimit.verdict import default_burst
from tests.fakes import commons_server as commons_server_module
from tests.fakes.images import jpeg_bytes
from tests.postgres import fresh_database

REPO_ROOT = Path(__file__).resolve().parents[2]
RATE_PER_HOUR = 18_000  # 5 requests/s: short tests, the same logic as at 500/h

pytestmark = [pytest.mark.slow, pytest.mark.processes]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_env(request, tmp_path):
    if request.param == "sqlite":
        yield {"SQLITE_PATH": str(tmp_path / "limiter.sqlite3")}
        return
    with fresh_database("limiter") as url:
        yield {"DATABASE_URL": url}


class Workers:
    """Starts tests.network.limiter_worker processes on one migrated database."""

    def __init__(self, commons_server, database_env: dict[str, str]) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            **database_env,
            "DJANGO_SETTINGS_MODULE": "city_wiki.settings",
            "WIKIMEDIA_API_URL": commons_server.api_url,
            "IMAGE_DOWNLOAD_ORIGINS": commons_server.origin,
            "WIKIMEDIA_RATE_PER_HOUR": str(RATE_PER_HOUR),
            "PYTHONPATH": str(REPO_ROOT),
            "LOG_LEVEL": "WARNING",
        }
        self.procs: list[subprocess.Popen] = []
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrate.returncode == 0, migrate.stderr

    def start(self, *args: str, skew: float = 0.0) -> subprocess.Popen:
        env = {**self.env, "LIMITER_CLOCK_SKEW": str(skew)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.network.limiter_worker", *args],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    @staticmethod
    def result(proc: subprocess.Popen, timeout: float = 60) -> dict:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)


@pytest.fixture
def workers(commons_server, database_env):
    group = Workers(commons_server, database_env)
    yield group
    group.stop()


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_a_sigkilled_worker_frees_the_api_slot_within_seconds(workers):
    holder = workers.start("--name=doomed", "--mode=hold-api", f"--stop={time.time() + 300}")
    assert holder.stdout.readline().strip() == "HELD"
    holder.send_signal(signal.SIGKILL)  # mid-request: it never releases the slot
    holder.wait(timeout=10)
    killed = time.time()

    waiter = workers.start("--name=next", "--mode=once-api", "--max-wait=60")
    got = workers.result(waiter)
    assert "error" not in got, got
    assert got["granted"] - killed < LEASE_SECONDS + 3  # its lease, not the old 120 s
    assert LEASE_SECONDS <= 15


@pytest.fixture
def trickle_ends_with_its_last_byte(monkeypatch):
    """The stand-in's trickle waits one tick (0.125 s) after its last byte, so a request
    counted "in flight" there outlives the client's by that tick, and the next download (which
    starts once the client has the whole body) would overlap it in `max_in_flight` although
    never on the wire. Here the handler returns with its last byte."""

    def trickle(handler, body: bytes, rate: float) -> None:
        step = max(1, int(rate * commons_server_module.TRICKLE_TICK))
        for start in range(0, len(body), step):
            if start:
                handler.stand_in._stopping.wait(commons_server_module.TRICKLE_TICK)
            handler.wfile.write(body[start : start + step])
            handler.wfile.flush()

    monkeypatch.setattr(commons_server_module._Handler, "_trickle", trickle)


@pytest.mark.usefixtures("trickle_ends_with_its_last_byte")
def test_slow_downloads_keep_their_slot_and_never_make_three(workers, commons_server):
    thumb = commons_server.add_file("Slow.jpg", jpeg_bytes("chelsea"))
    path = thumb.thumb_path(120)
    size = len(commons_server.media_answer(path)[2])
    commons_server.fail_always("trickle", path=path, rate=size / 2.5)  # 2.5 s > the 1 s lease
    url = commons_server.url_for_thumb(thumb, 120)
    start = time.time() + 2.0
    procs = [
        workers.start(
            f"--name=d{i}", "--mode=download", f"--start={start}", f"--thumb={url}", "--lease=1"
        )
        for i in range(3)
    ]
    results = [workers.result(p) for p in procs]

    assert all(r["sizes"] == [size] and not r["errors"] for r in results), results
    assert commons_server.max_in_flight["media"] == 2  # two at once, never three
    starts = sorted(r.time for r in commons_server.media_requests())
    assert len(starts) == 3
    assert starts[2] - starts[0] >= 2.0  # the third waited for one of the first two to end


def test_skewed_host_clocks_cannot_break_the_limiter(workers, commons_server):
    thumb = commons_server.add_file("Worker.jpg", jpeg_bytes("chelsea"))
    commons_server.fail_always("slow", path=thumb.thumb_path(120), delay=0.15)
    commons_server.fail_always("slow", delay=0.12)  # every API request is open a while
    url = commons_server.url_for_thumb(thumb, 120)
    run_seconds = 4.0
    start = time.time() + 2.5
    procs = [
        workers.start(
            f"--name=w{i}",
            f"--start={start}",
            f"--stop={start + run_seconds}",
            f"--thumb={url}",
            skew=skew,
        )
        for i, skew in enumerate([0.0, 120.0, 300.0, -120.0])
    ]
    results = [workers.result(p) for p in procs]

    assert all(not r["errors"] for r in results), results
    assert all(r["searches"] >= 1 for r in results), results  # nobody starved
    assert commons_server.max_in_flight["api"] == 1
    assert commons_server.max_in_flight["media"] <= 2
    times = [r.time for r in commons_server.api_requests()]
    burst = default_burst(RATE_PER_HOUR)
    refill = (RATE_PER_HOUR - burst) / 3600
    for window in (1.0, 2.0, 3.0, run_seconds):
        most = _max_in_window(times, window)
        assert most <= burst + refill * (window + 0.05), (window, most)


def test_waiters_are_served_in_arrival_order(workers):
    now = time.time()
    holder = workers.start("--name=first", "--mode=hold-api", f"--stop={now + 20.0}")
    assert holder.stdout.readline().strip() == "HELD"
    waiters = [
        workers.start(
            f"--name=w{i}", "--mode=once-api", "--start=-1", "--hold=0.05", "--max-wait=30"
        )
        for i in range(6)
    ]
    for waiter in waiters:  # every waiter has started up (however slowly) ...
        assert waiter.stdout.readline().strip() == "READY"
    start = time.time() + 0.5  # ... before the first one asks, then one every 0.4 s
    for i, waiter in enumerate(waiters):
        waiter.stdin.write(f"{start + 0.4 * i}\n")
        waiter.stdin.flush()
    results = [workers.result(p) for p in waiters]
    workers.result(holder)

    assert all("error" not in r for r in results), results
    asked = [r["name"] for r in sorted(results, key=lambda r: r["asked"])]
    served = [r["name"] for r in sorted(results, key=lambda r: r["granted"])]
    assert asked == [f"w{i}" for i in range(6)]
    assert served == asked
