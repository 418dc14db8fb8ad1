"""Promises that depend on order, on real processes: Django-Q clusters (`manage.py qcluster`)
with several workers on one SQLite file, or two clusters standing for two hosts on one
PostgreSQL database, against the Commons stand-in over HTTP with real NIMA.

- One photo, one place: every search returns the same photo (and a resized, re-encoded copy
  of it); whatever the interleaving, at most one POI of the city stores that scene, every
  other POI ends with exactly one flag, and the run ends.
- Cancel is final: while workers start items, a cancel returns; no item starts after it.
- A worker SIGKILLed inside the transaction that switches a POI's image: image, origin and
  winner are all old after the kill, all new after Django-Q's redelivery.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.postgres import fresh_database
from tests.ranking.cluster import SETUP, Cluster
from tests.ranking.helpers import scaled

pytestmark = pytest.mark.processes

POIS = 12
STATE = """
import json
from cities.models import PointOfInterest
from image_ranking.models import Candidate, PoiRanking
rows = []
for poi in PointOfInterest.objects.order_by("pk"):
    ranking = PoiRanking.objects.filter(poi=poi).first()
    rows.append({
        "poi": poi.pk,
        "image": poi.image_file.name or "",
        "origin": ranking.image_origin if ranking else "",
        "sha1": ranking.image_sha1 if ranking else "",
        "winners": list(Candidate.objects.filter(poi=poi, is_winner=True)
                        .values_list("sha1", flat=True)),
        "flag": ranking.validation.aggregate if ranking and ranking.validation else "",
    })
print(json.dumps(rows))
"""


def setup_pois(cluster: Cluster, names: list[str]) -> dict[str, int]:
    out = cluster.manage("shell", "-c", SETUP.format(names=names))
    return json.loads(out.strip().splitlines()[-1])


def state(cluster: Cluster) -> list[dict]:
    return json.loads(cluster.manage("shell", "-c", STATE).strip().splitlines()[-1])


def one_photo_for_every_search(commons_server, names: list[str]):
    photo = commons_server.add_file("Shared view.jpg", scaled("coffee", 900))
    copy = commons_server.add_file("Shared view small.jpg", scaled("coffee", 640))  # same scene
    for name in names:
        commons_server.set_results(name, [photo, copy])
    return photo, copy


def assert_one_place_for_the_scene(cluster: Cluster, run_id: int, ids: dict[str, int], files):
    rows = state(cluster)
    imaged = [r for r in rows if r["image"]]
    assert len(imaged) == 1, imaged  # the scene is stored for one POI, not two
    assert imaged[0]["sha1"] in {f.sha1 for f in files} and imaged[0]["origin"] == "pipeline"
    assert imaged[0]["winners"] == [imaged[0]["sha1"]]
    others = [r for r in rows if not r["image"]]
    assert len(others) == len(ids) - 1
    assert {r["flag"] for r in others} == {"shared_photo"}, others
    assert all(r["winners"] == [] for r in others)
    assert cluster.run_status(run_id) == "finished"
    cluster.assert_every_poi_resolved(run_id, list(ids.values()))


@pytest.fixture
def clusters(tmp_path, commons_server, nima_scorer):
    made: list[Cluster] = []

    def make(database_url: str = "", **settings: str) -> Cluster:
        cluster = Cluster(tmp_path, commons_server, database_url, **settings)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop_all()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_four_workers_never_store_one_photo_for_two_pois_sqlite(clusters, commons_server):
    cluster = clusters(Q_WORKERS="4")
    names = [f"Place {i:03d}" for i in range(POIS)]
    ids = setup_pois(cluster, names)
    files = one_photo_for_every_search(commons_server, names)
    run = cluster.rank("--threshold", "0")  # all queued before the workers start: they race
    cluster.start()
    cluster.wait_for_end(run["run_id"], timeout=180)
    assert_one_place_for_the_scene(cluster, run["run_id"], ids, files)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_two_hosts_never_store_one_photo_for_two_pois_postgresql(clusters, commons_server):
    with fresh_database("races") as url:
        cluster = clusters(url, Q_WORKERS="2")
        names = [f"Place {i:03d}" for i in range(POIS)]
        ids = setup_pois(cluster, names)
        files = one_photo_for_every_search(commons_server, names)
        run = cluster.rank("--threshold", "0")
        cluster.start()  # one host ...
        cluster.start()  # ... and another, on the same database and media storage
        cluster.wait_for_end(run["run_id"], timeout=180)
        assert_one_place_for_the_scene(cluster, run["run_id"], ids, files)
        cluster.stop_all()


CANCEL = """
import json
from image_ranking.models import RankingRun, RankingRunItem
from image_ranking.runs.service import cancel_run
run = RankingRun.objects.get(pk={run})
cancelled = cancel_run(run, reason="a curator's click")
started = sorted(RankingRunItem.objects.filter(run=run).exclude(started_at=None)
                 .values_list("pk", flat=True))
print(json.dumps({{"cancelled": cancelled, "started": started}}))
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_no_item_starts_after_a_cancel_returns(clusters, commons_server):
    cluster = clusters(Q_WORKERS="4")
    names = [f"Quick {i:03d}" for i in range(80)]  # no hits: each POI takes one slow search
    setup_pois(cluster, names)
    commons_server.fail_always("slow", delay=0.3, target="api")
    run_id = cluster.rank("--threshold", "0")["run_id"]
    cluster.start()
    deadline = time.monotonic() + 120
    started_sql = "SELECT COUNT(*) FROM image_ranking_rankingrunitem WHERE started_at IS NOT NULL"
    while cluster.query(started_sql)[0][0] < 8:  # workers are starting items right now
        assert time.monotonic() < deadline, "no item started"
        time.sleep(0.05)

    answer = json.loads(
        cluster.manage("shell", "-c", CANCEL.format(run=run_id)).strip().splitlines()[-1]
    )
    assert answer["cancelled"] > 0
    while cluster.query(
        "SELECT COUNT(*) FROM image_ranking_rankingrunitem WHERE run_id=? AND outcome IN "
        "('pending', 'running')",
        run_id,
    )[0][0]:  # the POIs being ranked at the cancel finish and are recorded
        assert time.monotonic() < deadline, cluster.items(run_id)
        time.sleep(0.2)
    time.sleep(1.0)  # and nothing else happens: late deliveries start nothing
    started = sorted(
        pk
        for (pk,) in cluster.query(
            "SELECT id FROM image_ranking_rankingrunitem WHERE run_id=? AND started_at IS NOT NULL",
            run_id,
        )
    )
    assert started == answer["started"]  # no item started after the cancel returned
    outcomes = {o for o, _ in cluster.items(run_id).values()}
    assert "cancelled" in outcomes and not outcomes & {"pending", "running"}
    ranked_after = cluster.query(
        "SELECT COUNT(*) FROM image_ranking_rankingrunitem i JOIN image_ranking_poiranking r "
        "ON r.poi_id = i.poi_id WHERE i.run_id=? AND i.outcome='cancelled' AND r.run_id=?",
        run_id,
        run_id,
    )[0][0]
    assert ranked_after == 0  # no cancelled POI was ranked by this run


DYING = REPO_ROOT / "tests" / "ranking" / "qcluster_dying_mid_switch.py"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_worker_killed_inside_the_image_switch_leaves_all_old_then_the_retry_all_new(
    clusters, commons_server, tmp_path
):
    marker = tmp_path / "died"
    cluster = clusters(Q_WORKERS="1", Q_TIMEOUT="10", Q_RETRY="12", DIE_MARKER=str(marker))
    ids = setup_pois(cluster, ["Panteão Nacional"])
    file = commons_server.add_file("Panteao.jpg", scaled("rocket", 900))
    commons_server.set_results("Panteão Nacional", [file])
    run_id = cluster.rank("--threshold", "0")["run_id"]
    cluster.start(DYING)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert time.monotonic() < deadline, "the worker never reached the image switch"
        time.sleep(0.05)
    _wait_dead(int(marker.read_text() or 0), deadline)

    [row] = state(cluster)  # SIGKILLed inside the transaction: nothing of it was kept
    assert (row["image"], row["origin"], row["sha1"], row["winners"]) == ("", "", "", [])

    cluster.wait_for_end(run_id, timeout=120)  # Django-Q hands the task out again
    [row] = state(cluster)
    assert row["image"] and row["origin"] == "pipeline"
    assert row["sha1"] == file.sha1 and row["winners"] == [file.sha1] and row["flag"] == ""
    cluster.assert_every_poi_resolved(run_id, list(ids.values()))


def _wait_dead(pid: int, deadline: float) -> None:
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return  # gone
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return  # a zombie: dead, waiting for its parent to reap it
        assert time.monotonic() < deadline, "the worker did not die"
        time.sleep(0.05)
