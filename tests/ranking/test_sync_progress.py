"""`rank_poi_images --sync` draws its progress bar once: the final bar is not printed twice."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.core.management import call_command

from tests.fakes.images import jpeg_bytes

from .helpers import FixedScorer

pytestmark = pytest.mark.django_db


@pytest.fixture
def fixed_scorer(monkeypatch):
    monkeypatch.setattr(
        "image_ranking.pipeline.ranking.get_scorer", lambda name=None: FixedScorer()
    )


@pytest.fixture
def slow_pois(monkeypatch):
    """Each POI takes longer than tqdm's 0.1 s refresh interval, as a real one does, so every
    update is drawn (a fast run would hide a repeated final bar behind tqdm's throttling)."""
    from image_ranking.runs import tasks

    real = tasks.rank_poi_task

    def slow(*args, **kwargs):
        time.sleep(0.15)
        return real(*args, **kwargs)

    monkeypatch.setattr(tasks, "rank_poi_task", slow)


def run_sync() -> tuple[dict, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "rank_poi_images", "--sync", "--city", "Lisbon", "--threshold", "1", stdout=out, stderr=err
    )
    return json.loads(out.getvalue()), err.getvalue()


def test_the_final_bar_is_printed_once(make_poi, commons_server, fixed_scorer, slow_pois):
    for name in ("Bar A", "Bar B", "Bar C"):
        make_poi(name)
    commons_server.set_results("Bar A", [commons_server.add_file("A.jpg", jpeg_bytes("chelsea"))])

    result, err = run_sync()

    assert result["processed_count"] == 3
    draws = [draw for draw in err.replace("\n", "\r").split("\r") if draw.strip()]
    assert [draw.split("|")[-1].split()[0] for draw in draws[1:]] == ["1/3", "2/3", "3/3"]
    assert err.count("3/3") == 1 and err.count("100%") == 1
    assert err.endswith("\n") and err.count("\n") == 1  # the finished bar stays, on one line


def test_with_nothing_to_rank_no_bar_is_left(make_poi, commons_server, fixed_scorer):
    result, err = run_sync()

    assert result["processed_count"] == 0
    assert err.count("Ranking") == 1 and "\n" not in err  # drawn at the start, then cleared
