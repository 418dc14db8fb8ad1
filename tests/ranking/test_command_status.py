"""Honest status: `rank_poi_images` says "failed" when every POI failed (and exits 1),
"partial" when some did, "success" otherwise, "cancelled" for a cancelled run; `run_result`,
which the Prefect task returns too, is where the status comes from."""

from __future__ import annotations

import json

import pytest
from django.core.management import execute_from_command_line

from image_ranking.management.commands import rank_poi_images as rank_command
from image_ranking.models import RankingRun
from image_ranking.pipeline import ranking
from image_ranking.runs import service as runs
from tests.fakes.images import jpeg_bytes

from .helpers import FixedScorer

pytestmark = pytest.mark.django_db


@pytest.fixture
def fixed_scorer(monkeypatch):
    """Control flow only: the model's opinion is irrelevant here."""
    # Patched where it is used: patching image_ranking.scoring's name would leave the fake in
    # the command module for good when that module is first imported under the patch.
    monkeypatch.setattr(rank_command, "get_scorer", lambda name=None: FixedScorer())
    monkeypatch.setattr(ranking, "get_scorer", lambda name=None: FixedScorer())


def rank_poi_images(capsys, *args: str) -> tuple[dict, int]:
    """`manage.py rank_poi_images ARGS` as a shell runs it: its JSON line and exit status."""
    code = 0
    try:
        execute_from_command_line(["manage.py", "rank_poi_images", *args])
    except SystemExit as exit:
        code = exit.code
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert len(lines) == 1, out
    return json.loads(lines[0]), code


def test_every_poi_failing_is_failed_and_exits_non_zero(
    make_poi, commons_server, fixed_scorer, capsys
):
    for name in ("Down A", "Down B"):
        make_poi(name)
    commons_server.fail_always("api_error")
    result, code = rank_poi_images(capsys, "--sync", "--city", "Lisbon")
    assert (result["status"], result["failed_count"], result["processed_count"]) == ("failed", 2, 2)
    assert code == 1


def test_some_pois_failing_is_partial_and_exits_zero(
    make_poi, commons_server, fixed_scorer, capsys
):
    make_poi("Fine place")
    make_poi("Broken place")
    commons_server.set_results(
        "Fine place", [commons_server.add_file("F.jpg", jpeg_bytes("coffee"))]
    )
    commons_server.fail_always("api_error", query="Broken place")
    result, code = rank_poi_images(capsys, "--sync", "--threshold", "1")
    assert (result["status"], result["updated_count"], result["failed_count"]) == ("partial", 1, 1)
    assert code == 0


def test_no_failure_is_success_also_for_flags_and_for_no_pois(
    make_poi, commons_server, fixed_scorer, capsys
):
    result, code = rank_poi_images(capsys, "--sync")
    assert (result["status"], result["message"], result["total"], code) == (
        "success",
        "No POIs to rank.",
        0,
        0,
    )
    make_poi("Nothing on Commons")  # flagged "no images": a result, not a failure
    result, code = rank_poi_images(capsys, "--sync")
    assert (result["status"], result["flagged_count"], code) == ("success", 1, 0)


def test_a_queued_run_says_queued_and_a_cancelled_one_cancelled(
    make_poi, commons_server, fixed_scorer, capsys
):
    make_poi("Waiting")
    result, code = rank_poi_images(capsys)
    assert (result["status"], code) == ("queued", 0)
    assert result["message"] == f"1 POIs queued for the Django-Q cluster (run {result['run_id']})"
    run = RankingRun.objects.get(pk=result["run_id"])
    runs.cancel_run(run)
    assert runs.run_result(run)["status"] == "cancelled"
