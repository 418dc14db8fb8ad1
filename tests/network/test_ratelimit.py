"""The shared rate limiter: several worker PROCESSES against one database (SQLite file and
a real PostgreSQL server), measured on the Commons stand-in's own request log."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from image_ranking import dbclock
from image_ranking.commons.client import CommonsError, get_commons_client
from image_ranking.commons.downloads import DownloadError, fetch_image_bytes
from image_ranking.commons.ratelimit import RateLimitTimeout, api_limiter
from image_ranking.commons.ratelimit.shared import SharedLimiter
from image_ranking.commons.ratelimit.verdict import LimiterConfig, default_burst
from image_ranking.models import RateLimitBucket
from tests.fakes.images import jpeg_bytes
from tests.postgres import fresh_database

pytestmark = pytest.mark.processes

REPO_ROOT = Path(__file__).resolve().parents[2]
RATE_PER_HOUR = 18_000  # 5 requests/s keeps the test short; the logic is the same at 500/h
WORKERS = 4
RUN_SECONDS = 4.0
PAUSE_SECONDS = 2


# --- in one process ---------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_block_until_makes_the_next_request_wait(caplog):
    limiter = SharedLimiter(LimiterConfig("test_api", 0, 1, 1, 30))
    limiter.block_until(time.time() + 0.8)
    started = time.monotonic()
    with (
        caplog.at_level(logging.INFO, logger="image_ranking.commons.ratelimit.shared"),
        limiter.slot(),
    ):
        waited = time.monotonic() - started
    assert waited >= 0.75
    assert "waited" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_wait_longer_than_allowed_raises():
    limiter = SharedLimiter(LimiterConfig("test_api", 0, 1, 1, 30))
    limiter.block_until(time.time() + 3600)
    with pytest.raises(RateLimitTimeout), limiter.slot(max_wait=0.2):
        pass


@pytest.mark.django_db(transaction=True)
def test_a_dead_workers_slot_frees_itself_when_the_lease_ends():
    limiter = SharedLimiter(LimiterConfig("test_media", 0, 1, 2, lease_seconds=1.0))
    # Two workers took both slots and were killed: no heartbeat renews their leases.
    limiter._ensure_rows()
    assert limiter._attempt("dead-worker-1", None)[0].wait == 0
    assert limiter._attempt("dead-worker-2", None)[0].wait == 0
    started = time.monotonic()
    with limiter.slot(max_wait=5):
        waited = time.monotonic() - started
    assert 0.8 <= waited < 3


@pytest.mark.django_db(transaction=True)
def test_token_bucket_spaces_requests_after_the_burst(settings):
    settings.WIKIMEDIA_RATE_PER_HOUR = 36_000  # burst 5, then 10 per second
    limiter = api_limiter()
    times = []
    for _ in range(10):
        with limiter.slot(max_wait=5):
            times.append(time.monotonic())
    assert times[4] - times[0] < 0.3  # the burst goes out at once
    spacing = (times[9] - times[5]) / 4
    assert spacing == pytest.approx(3600 / (36_000 - 5), rel=0.25)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("target", ["api", "media"])
def test_a_429_blocks_every_worker_before_its_slot_is_free(
    commons_server, settings, monkeypatch, target
):
    # Another worker waiting for the slot takes it the moment it is released: the block
    # must already be there, or that worker's request goes out right after the 429.
    settings.WIKIMEDIA_RATE_PER_HOUR = 36_000
    tower = commons_server.add_file("Tower.jpg", jpeg_bytes("coffee"))
    blocked_at_release = []
    release = SharedLimiter._release

    def watched_release(limiter, holder):
        bucket = RateLimitBucket.objects.get(name=limiter.config.name)
        blocked_at_release.append(bucket.blocked_until - dbclock.epoch())
        release(limiter, holder)

    monkeypatch.setattr(SharedLimiter, "_release", watched_release)
    if target == "api":
        commons_server.fail_next("429", retry_after=600)
        with pytest.raises(CommonsError):
            get_commons_client(max_wait=1).search_candidates("Tower")
    else:
        commons_server.fail_next("429", path=tower.path, retry_after=600)
        with pytest.raises(DownloadError):
            fetch_image_bytes(commons_server.url_for_original(tower), max_bytes=10**7, max_wait=1)
    assert blocked_at_release[0] > 590


# --- several processes ------------------------------------------------------------------------
def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _run_workers(commons_server, env: dict[str, str]) -> list[dict]:
    thumb = commons_server.add_file("Worker.jpg", jpeg_bytes("chelsea"))
    commons_server.fail_always("slow", path=thumb.thumb_path(120), delay=0.15)
    env = {
        **env,
        "DJANGO_SETTINGS_MODULE": "city_wiki.settings",
        "WIKIMEDIA_API_URL": commons_server.api_url,
        "IMAGE_DOWNLOAD_ORIGINS": commons_server.origin,
        "WIKIMEDIA_RATE_PER_HOUR": str(RATE_PER_HOUR),
        "PYTHONPATH": str(REPO_ROOT),
        "LOG_LEVEL": "WARNING",
    }
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.network.limiter_worker",
                f"--name=w{i}",
                "--start=-1",  # told once set up
                f"--thumb={commons_server.url_for_thumb(thumb, 120)}",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(WORKERS)
    ]
    for proc in procs:  # every worker set up (however slowly) before the first request
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
    start = time.time() + 0.5
    for proc in procs:
        proc.stdin.write(f"{start} {start + RUN_SECONDS}\n")
        proc.stdin.flush()
    # One 429 in the middle of the run: every worker must pause until its Retry-After.
    time.sleep(max(0.0, start + 1.5 - time.time()))
    commons_server.fail_next("429", retry_after=PAUSE_SECONDS)
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _check_the_log(commons_server, results: list[dict]) -> dict:
    api = commons_server.api_requests()
    times = [r.time for r in api]
    burst = default_burst(RATE_PER_HOUR)
    refill = (RATE_PER_HOUR - burst) / 3600
    figures = {}
    for window in (1.0, 2.0, 3.0):
        most = _max_in_window(times, window)
        bound = burst + refill * (window + 0.05)  # 50 ms: token taken -> request on the wire
        figures[window] = (most, bound)
        assert most <= bound, f"{most} requests in {window}s > {bound:.1f}"
    assert commons_server.max_in_flight["api"] == 1
    assert commons_server.max_in_flight["media"] == 2  # two downloads overlap, never three
    # The 429 paused every worker for its Retry-After.
    (limited,) = [r for r in api if r.fault == "429"]
    after = [r for r in api if r.time > limited.time]
    assert after, "nobody resumed after the pause"
    assert after[0].time - limited.time >= PAUSE_SECONDS
    assert len({r.search_text.split()[0] for r in after}) >= 2  # several workers resumed
    assert all(not r["errors"] for r in results), results
    assert sum(r["searches"] for r in results) == len(api) - 1  # the 429 was retried
    # Not over-throttled: close to what the budget allows outside the pause.
    allowed = burst + refill * (RUN_SECONDS - PAUSE_SECONDS)
    assert len(api) >= 0.7 * allowed
    return figures


@pytest.mark.slow
def test_processes_share_the_limit_on_sqlite(commons_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["SQLITE_PATH"] = str(tmp_path / "limiter.sqlite3")
    results = _run_workers(commons_server, env)
    figures = _check_the_log(commons_server, results)
    print("sqlite: max requests per window (measured, bound):", figures)


@pytest.fixture
def postgres_database():
    with fresh_database("limiter") as url:
        yield url


@pytest.mark.slow
@pytest.mark.postgres
def test_processes_share_the_limit_on_postgresql(commons_server, postgres_database):
    env = dict(os.environ, DATABASE_URL=postgres_database)
    results = _run_workers(commons_server, env)
    figures = _check_the_log(commons_server, results)
    print("postgresql: max requests per window (measured, bound):", figures)
