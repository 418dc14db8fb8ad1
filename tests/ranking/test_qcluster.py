"""Runs on a real Django-Q cluster (`manage.py qcluster` subprocesses on one SQLite file, the
Commons stand-in over HTTP, real NIMA): a task past Q_TIMEOUT, a SIGKILLed worker, then a
SIGKILLed cluster. Whatever happens, the run ends with every POI processed, each POI with an
image or exactly one flag, no orphan file, and the next run can start at once.

`CLUSTER_TEST_POIS=116 pytest tests/ranking/test_qcluster.py -s` runs the kill test at the
size of the demo (it prints the figures); the default is small enough for CI.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.conftest import REPO_ROOT
from tests.ranking.cluster import FINAL, Cluster, make_pois

pytestmark = pytest.mark.processes


@pytest.fixture
def cluster_factory(tmp_path, commons_server, nima_scorer):
    made: list[Cluster] = []

    def make(**settings: str) -> Cluster:
        cluster = Cluster(tmp_path, commons_server, **settings)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop_all()


@pytest.mark.timeout(180)
def test_a_task_past_q_timeout_is_recorded_and_the_run_ends(cluster_factory, commons_server):
    cluster = cluster_factory(Q_TIMEOUT="4", Q_RETRY="6", Q_MAX_ATTEMPTS="1")
    ids = make_pois(cluster, commons_server, 4)
    commons_server.fail_always("slow", delay=10, query="Place 001")  # far past Q_TIMEOUT
    run = cluster.rank("--threshold", "0")
    cluster.start(REPO_ROOT / "tests" / "ranking" / "qcluster_ignoring_budget.py")
    cluster.wait_for_end(run["run_id"], timeout=120)

    items = cluster.items(run["run_id"])
    outcome, reason = items[ids["Place 001"]]
    assert outcome == "failed" and "timeout" in reason
    flags = cluster.query(
        "SELECT v.aggregate FROM cities_validation v JOIN image_ranking_poiranking r "
        "ON r.validation_id = v.id WHERE r.poi_id=?",
        ids["Place 001"],
    )
    assert flags == [("internal_error",)]
    cluster.assert_every_poi_resolved(run["run_id"], list(ids.values()))
    commons_server.clear_faults()
    # "Rank missing" works again at once: the flagged POI is taken by the next run.
    again = cluster.rank("--threshold", "0", "--sync")
    assert again["status"] == "success" and again["total"] >= 1


@pytest.mark.timeout(600)
def test_a_sigkilled_worker_then_cluster_lose_no_poi(cluster_factory, commons_server):
    count = int(os.environ.get("CLUSTER_TEST_POIS", "14"))
    cluster = cluster_factory(Q_TIMEOUT="8", Q_RETRY="10")
    ids = make_pois(cluster, commons_server, count)
    commons_server.fail_always("slow", delay=0.4, target="api")  # each POI takes a moment
    started = time.monotonic()
    run = cluster.rank("--threshold", "0")
    run_id = run["run_id"]
    first = cluster.start()

    def done() -> int:
        return sum(1 for o, _ in cluster.items(run_id).values() if o in FINAL)

    while done() < 2:
        assert time.monotonic() - started < 120, "the cluster never ranked anything"
        time.sleep(0.2)
    os.kill(cluster.workers(first)[0], signal.SIGKILL)  # one worker, mid-task
    while done() < min(count - 2, 5):
        assert time.monotonic() - started < 180, cluster.items(run_id)
        time.sleep(0.2)
    cluster.kill(first)  # then the whole cluster, tasks in flight and prefetched
    killed_at = done()
    second = cluster.start()
    cluster.wait_for_end(run_id, timeout=300)
    elapsed = time.monotonic() - started

    cluster.assert_every_poi_resolved(run_id, list(ids.values()))
    items = cluster.items(run_id)
    lost = sum(1 for o, _ in items.values() if o not in FINAL)
    print(
        f"\n{count} POIs: finished in {elapsed:.1f} s, {killed_at} done when the cluster was "
        f"killed, lost {lost}; outcomes "
        + json.dumps({o: sum(1 for v, _ in items.values() if v == o) for o in sorted(FINAL)})
    )
    assert lost == 0
    cluster.kill(second)
    commons_server.clear_faults()
    again = cluster.rank("--scope", "all", "--threshold", "0")  # not blocked by the first
    assert again["total"] == count
