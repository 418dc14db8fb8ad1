"""Real worker processes on one database: two jobs for one POI, and a SIGKILLed worker.

Each job is a separate `manage.py shell` process calling `rank_poi`, as two Django-Q workers
would; they share a WAL SQLite file (or a PostgreSQL database under `make test`), the media
folder and the Commons stand-in (127.0.0.1).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO_ROOT
from tests.fakes.images import photo
from tests.postgres import fresh_database

pytestmark = pytest.mark.processes

SETUP = """
from cities.models import City, PointOfInterest, PoiList
city = City.objects.create(name="Lisbon", latitude=38.7139, longitude=-9.1394)
poi = PointOfInterest.objects.create(city=city, name="Torre de Belém", category="see")
PoiList.objects.create(title="Sights", city=city).pois.add(poi)
print(poi.pk)
"""
RANK = """
from image_ranking.runs.tasks import rank_poi_task
print("OUTCOME", rank_poi_task({poi}, threshold=0, run_id={run}))
"""
STATE = """
import json
from cities.models import PointOfInterest
from image_ranking.models import PoiRanking, RankingRun
poi = PointOfInterest.objects.get(pk={poi})
row = PoiRanking.objects.get(poi=poi)
run = RankingRun.objects.get(pk={run})
print(json.dumps({{"image": poi.image_file.name, "claimed_by": row.claimed_by,
    "processed": run.tally().processed, "updated": run.tally().updated, "status": run.status}}))
"""
# A host whose clock runs ahead: Python's wall clock and Django's timezone.now() in that process.
SKEWED = """
import datetime, time
from django.utils import timezone
_real_time, _real_now = time.time, timezone.now
time.time = lambda: _real_time() + {skew}
timezone.now = lambda: _real_now() + datetime.timedelta(seconds={skew})
"""
NEW_RUN = """
from image_ranking.models import RankingRun
print(RankingRun.objects.create().pk)
"""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_env(request, tmp_path):
    """The database the worker processes share: a WAL SQLite file, or a fresh PostgreSQL
    database on the server `make test` starts (skipped without it)."""
    if request.param == "sqlite":
        yield {"SQLITE_PATH": str(tmp_path / "db.sqlite3")}
        return
    with fresh_database("ranking") as url:
        yield {"DATABASE_URL": url}


@pytest.fixture
def workers(commons_server, tmp_path, nima_scorer, database_env):
    """run(code, **env) -> a started process; output(code) -> its stdout when done."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        **database_env,
        "DJANGO_SETTINGS_MODULE": "city_wiki.settings",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "WIKIMEDIA_API_URL": commons_server.api_url,
        "IMAGE_DOWNLOAD_ORIGINS": commons_server.origin,
        "WIKIMEDIA_RATE_PER_HOUR": "0",
        "IMAGE_RANKING_THUMB_WIDTH": "500",
        "LOG_LEVEL": "WARNING",
    }
    manage = [sys.executable, str(REPO_ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, timeout=120)

    def run(code: str, **extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [*manage, "shell", "-c", code],
            env={**env, **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def output(code: str, **extra: str) -> str:
        out, err = run(code, **extra).communicate(timeout=120)
        assert "Traceback" not in err, err
        return out

    started = []

    def tracked(code: str, **extra: str) -> subprocess.Popen:
        process = run(code, **extra)
        started.append(process)
        return process

    yield tracked, output, tmp_path / "media"
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def outcome(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=120)
    lines = [line for line in out.splitlines() if line.startswith("OUTCOME ")]
    assert lines, err
    return lines[-1].split()[1]


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def big_photo(name: str) -> Image.Image:
    image = photo(name)
    return image.resize((1600, round(image.height * 1600 / image.width)))


def test_two_jobs_for_one_poi_at_once_one_does_the_work(workers, commons_server):
    run, output, media = workers
    poi = int(output(SETUP).split()[-1])
    run_id = int(output(NEW_RUN).split()[-1])
    file = commons_server.add_file("Belem.jpg", big_photo("rocket"))
    commons_server.set_results("Torre de Belém", [file])
    commons_server.fail_next("slow", delay=4.0)  # the first job's search hangs a while

    first = run(RANK.format(poi=poi, run=run_id))
    wait_for(lambda: len(commons_server.api_requests()) == 1)  # it holds the claim now
    second = run(RANK.format(poi=poi, run=run_id))

    assert sorted([outcome(first), outcome(second)]) == ["skipped", "updated"]
    assert len(commons_server.api_requests()) == 1
    assert [p.name for p in (media / "cities/images/pois/lisbon").iterdir()] == [
        "torre_de_belém.jpg"
    ]
    state = json.loads(output(STATE.format(poi=poi, run=run_id)).strip().splitlines()[-1])
    assert (state["processed"], state["updated"], state["status"]) == (1, 1, "finished")


def test_a_host_clock_5_min_ahead_cannot_take_a_live_claim(workers, commons_server):
    """Claims are dated and compared on the database's clock: a job on a host 5 min ahead
    (more than the 300 s claim timeout) must not see the other job's live claim as stale."""
    run, output, _media = workers
    poi = int(output(SETUP).split()[-1])
    run_id = int(output(NEW_RUN).split()[-1])
    file = commons_server.add_file("Belem.jpg", big_photo("rocket"))
    commons_server.set_results("Torre de Belém", [file])
    commons_server.fail_next("slow", delay=4.0)  # the first job's search hangs a while

    first = run(RANK.format(poi=poi, run=run_id))
    wait_for(lambda: len(commons_server.api_requests()) == 1)  # it holds the claim now
    second = run(SKEWED.format(skew=310.0) + RANK.format(poi=poi, run=run_id), Q_TIMEOUT="300")

    assert sorted([outcome(first), outcome(second)]) == ["skipped", "updated"]
    assert len(commons_server.api_requests()) == 1
    state = json.loads(output(STATE.format(poi=poi, run=run_id)).strip().splitlines()[-1])
    assert state["claimed_by"] == ""
    assert (state["processed"], state["updated"], state["status"]) == (1, 1, "finished")


def test_sigkilled_worker_then_retry_finishes_with_no_orphan_file(workers, commons_server):
    run, output, media = workers
    poi = int(output(SETUP).split()[-1])
    run_id = int(output(NEW_RUN).split()[-1])
    file = commons_server.add_file("Belem.jpg", big_photo("rocket"))
    commons_server.set_results("Torre de Belém", [file])
    winner_path = file.thumb_path(1280)
    commons_server.fail_next("slow", path=winner_path, delay=10.0)

    doomed = run(RANK.format(poi=poi, run=run_id))
    wait_for(lambda: any(r.path == winner_path for r in commons_server.media_requests()))
    doomed.send_signal(signal.SIGKILL)  # mid-task: the POI is claimed, nothing stored
    doomed.wait(timeout=10)

    # A retry within the task timeout sees a live claim and leaves the POI alone ...
    assert outcome(run(RANK.format(poi=poi, run=run_id))) == "skipped"
    # ... after Django-Q's timeout the claim is stale and the retry does the job.
    time.sleep(1.2)
    retry = run(RANK.format(poi=poi, run=run_id), Q_TIMEOUT="1", Q_RETRY="2")
    assert outcome(retry) == "updated"

    state = json.loads(output(STATE.format(poi=poi, run=run_id)).strip().splitlines()[-1])
    assert state["image"] == "cities/images/pois/lisbon/torre_de_belém.jpg"
    assert state["claimed_by"] == ""
    assert (state["processed"], state["updated"], state["status"]) == (1, 1, "finished")
    files = sorted(str(p.relative_to(media)) for p in Path(media).rglob("*") if p.is_file())
    assert files == ["cities/images/pois/lisbon/torre_de_belém.jpg"]
