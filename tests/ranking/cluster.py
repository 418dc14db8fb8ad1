"""A real Django-Q cluster for tests: `manage.py qcluster` subprocesses on one database (a SQLite
file, or a PostgreSQL database when `database_url` is given), the media folder and the Commons
stand-in over HTTP. Several clusters on one PostgreSQL database stand for several hosts.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.fakes.images import PHOTO_NAMES
from tests.ranking.helpers import scaled

FINAL = {"updated", "ranked", "flagged", "failed", "skipped", "cancelled"}
SETUP = """
import json
from cities.models import City, PointOfInterest, PoiList
city = City.objects.create(name="Lisbon", latitude=38.7139, longitude=-9.1394)
poi_list = PoiList.objects.create(title="Sights", city=city)
ids = {{}}
for name in {names!r}:
    poi = PointOfInterest.objects.create(city=city, name=name, category="see")
    poi_list.pois.add(poi)
    ids[name] = poi.pk
print(json.dumps(ids))
"""


class Cluster:
    """The database file, the media folder and the processes of one test."""

    def __init__(
        self, tmp_path: Path, commons_server, database_url: str = "", **settings: str
    ) -> None:
        self.db_path = tmp_path / "db.sqlite3"
        self.database_url = database_url
        self.media = tmp_path / "media"
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            **({"DATABASE_URL": database_url} if database_url else {}),
            "DJANGO_SETTINGS_MODULE": "city_wiki.settings",
            "SQLITE_PATH": str(self.db_path),
            "MEDIA_ROOT": str(self.media),
            "WIKIMEDIA_API_URL": commons_server.api_url,
            "IMAGE_DOWNLOAD_ORIGINS": commons_server.origin,
            "WIKIMEDIA_RATE_PER_HOUR": "0",
            "LOG_LEVEL": "WARNING",
            "Q_WORKERS": "2",
            **settings,
        }
        self.processes: list[subprocess.Popen] = []
        self.manage("migrate", "-v0")

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(REPO_ROOT / "manage.py"), *args],
            env=self.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self, script: Path | None = None) -> subprocess.Popen:
        """A qcluster in its own process group (so the whole cluster can be SIGKILLed)."""
        command = [sys.executable, str(script)] if script else [
            sys.executable, str(REPO_ROOT / "manage.py"), "qcluster",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, env=self.env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL the cluster and every process it started."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                self.kill(process)

    def query(self, sql: str, *params) -> list[tuple]:
        """`sql` with `?` placeholders, on the cluster's database."""
        if self.database_url:
            import psycopg

            with psycopg.connect(self.database_url) as conn:
                return conn.execute(sql.replace("?", "%s"), params).fetchall()
        with sqlite3.connect(self.db_path, timeout=30) as conn:
            return conn.execute(sql, params).fetchall()

    def items(self, run_id: int) -> dict[int, tuple[str, str]]:
        rows = self.query(
            "SELECT poi_id, outcome, reason FROM image_ranking_rankingrunitem WHERE run_id=?",
            run_id,
        )
        return {poi: (outcome, reason) for poi, outcome, reason in rows}

    def run_status(self, run_id: int) -> str:
        return self.query("SELECT status FROM image_ranking_rankingrun WHERE id=?", run_id)[0][0]

    def wait_for_end(self, run_id: int, timeout: float) -> float:
        started = time.monotonic()
        while self.run_status(run_id) in {"queued", "running"}:
            assert time.monotonic() - started < timeout, (
                f"run {run_id} still {self.run_status(run_id)} after {timeout} s: "
                f"{self.items(run_id)}"
            )
            time.sleep(0.5)
        return time.monotonic() - started

    def rank(self, *args: str) -> dict:
        return json.loads(self.manage("rank_poi_images", *args).strip().splitlines()[-1])

    def workers(self, cluster: subprocess.Popen) -> list[int]:
        """The cluster's worker processes: the sentinel's first children (django-q2 spawns
        the workers, then the monitor, then the pusher)."""
        sentinels = _children(cluster.pid)
        assert sentinels, "no sentinel process"
        children = sorted(_children(sentinels[0]))
        return children[: int(self.env["Q_WORKERS"])]

    def assert_every_poi_resolved(self, run_id: int, poi_ids: list[int]) -> None:
        items = self.items(run_id)
        assert set(items) == set(poi_ids)
        assert {outcome for outcome, _ in items.values()} <= FINAL, items
        images = dict(self.query("SELECT id, image_file FROM cities_pointofinterest"))
        flags = dict(self.query("SELECT poi_id, validation_id FROM image_ranking_poiranking"))
        rows = self.query("SELECT id FROM cities_validation WHERE context='image_ranking'")
        linked = [flag for flag in flags.values() if flag is not None]
        assert sorted(linked) == sorted(pk for (pk,) in rows)  # no duplicate or stray flag
        for poi in poi_ids:
            assert images[poi] or flags.get(poi), (poi, items[poi])  # an image or its flag
        stored = {str(p.relative_to(self.media)) for p in self.media.rglob("*") if p.is_file()}
        assert stored == {name for name in images.values() if name}  # no orphan file


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def make_pois(cluster: Cluster, commons_server, count: int) -> dict[str, int]:
    """`count` POIs in a list; most have two real photos on the stand-in, every seventh none."""
    names = [f"Place {i:03d}" for i in range(count)]
    ids = json.loads(
        cluster.manage("shell", "-c", SETUP.format(names=names)).strip().splitlines()[-1]
    )
    for i, name in enumerate(names):
        if i % 7 == 6:
            continue
        photos = [PHOTO_NAMES[i % len(PHOTO_NAMES)], PHOTO_NAMES[(i + 3) % len(PHOTO_NAMES)]]
        files = [
            commons_server.add_file(f"{name} {j}.jpg", scaled(photo, 640))
            for j, photo in enumerate(photos)
        ]
        commons_server.set_results(name, files)
    return ids
