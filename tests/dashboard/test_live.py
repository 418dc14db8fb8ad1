"""Live cards and the run panel: while a batch run goes on, the panel's poll brings the cards
of the page's POIs whose item changed (swapped out of band); a dead run ends while curators
watch (the poll sweeps it); a curator can cancel a run; two quick clicks never start two
runs."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from image_ranking.models import PoiRanking, RankingRun, RankingRunItem
from tests.dashboard.factories import make_pois, make_run

pytestmark = pytest.mark.django_db

DASH = reverse("image_ranking:dashboard")
HTMX = {"HTTP_HX_REQUEST": "true"}


def poll_url(html: str) -> str:
    """The URL the run panel polls, as the browser would request it."""
    found = re.search(r'id="run-progress"[^>]*hx-get="([^"]+)"', html)
    assert found, "the panel does not poll"
    return found.group(1).replace("&amp;", "&")


def oob_cards(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'id="poi-(\d+)" hx-swap-oob="true"', html)]


def set_item(run, poi, outcome: str) -> None:
    fields = {"outcome": outcome}
    if outcome not in ("pending", "running"):
        fields["finished_at"] = timezone.now()
    RankingRunItem.objects.filter(run=run, poi=poi).update(**fields)


@pytest.fixture
def running(db):
    """A page of 4 POIs; a batch run has the two without an image queued."""
    _, _, pois = make_pois(4, 2, image_every=3, flag_every=0)
    queued = [pois[1], pois[2]]
    run = make_run(queued, ["pending", "pending"])
    return pois, queued, run


def test_cards_of_queued_pois_say_so_and_the_panel_watches_the_page(staff_client, running):
    pois, (first, second), run = running
    html = staff_client.get(DASH).text
    for poi in (first, second):
        card = html.split(f'id="poi-{poi.pk}"')[1].split("</article>")[0]
        assert 'data-live="pending"' in card and "Queued" in card
    assert 'data-live="' not in html.split(f'id="poi-{pois[0].pk}"')[1].split("</article>")[0]
    url = poll_url(html)
    assert url.startswith(reverse("image_ranking:run_progress", args=[run.pk]))
    assert f"pois={','.join(str(p.pk) for p in pois)}" in url.replace("%2C", ",")
    assert f"shown={first.pk}q,{second.pk}q" in url.replace("%2C", ",")


def test_the_poll_swaps_only_the_cards_whose_item_changed(staff_client, running):
    _, (first, second), run = running
    url = poll_url(staff_client.get(DASH).text)
    assert oob_cards(staff_client.get(url, **HTMX).text) == []  # nothing changed yet

    set_item(run, first, "running")
    answer = staff_client.get(url, **HTMX).text
    assert oob_cards(answer) == [first.pk]
    assert 'data-live="running"' in answer and "Ranking…" in answer
    url = poll_url(answer)
    assert f"shown={first.pk}r,{second.pk}q" in url.replace("%2C", ",")

    set_item(run, first, "updated")
    PoiRanking.objects.filter(poi=first).update(status="updated", best_score=6.6)
    answer = staff_client.get(url, **HTMX).text
    assert oob_cards(answer) == [first.pk]
    card = answer.split(f'id="poi-{first.pk}"')[1].split("</article>")[0]
    assert "data-live" not in card and "Image stored" in card and "best 6.60" in card
    assert "<b data-processed>1</b> / <span data-total>2</span>" in answer
    url = poll_url(answer)
    assert oob_cards(staff_client.get(url, **HTMX).text) == []  # each change swaps once


def test_the_last_poll_brings_the_last_cards_and_stops(staff_client, running):
    _, (first, second), run = running
    url = poll_url(staff_client.get(DASH).text)
    set_item(run, first, "flagged")
    set_item(run, second, "failed")
    RankingRun.objects.filter(pk=run.pk).update(status="finished", active_key=None)
    response = staff_client.get(url, **HTMX)
    assert sorted(oob_cards(response.text)) == sorted([first.pk, second.pk])
    assert 'hx-trigger="load' not in response.text.split("</div>")[0]
    assert "rankingRunFinished" in response["HX-Trigger"]


@pytest.mark.parametrize(
    "query",
    [
        "pois=1,x",
        "pois=-1",
        "pois=1&shown=2q",
        "pois=1&shown=1z",
        "pois=1&shown=q",
        "pois=" + ",".join(["1"] * 101),
    ],
)
def test_bad_live_card_parameters_are_400(staff_client, running, query):
    _, _, run = running
    url = reverse("image_ranking:run_progress", args=[run.pk])
    assert staff_client.get(f"{url}?{query}", **HTMX).status_code == 400


def test_the_poll_ends_a_run_whose_task_is_lost(staff_client, running, settings):
    _, (first, second), run = running
    long_ago = timezone.now() - timedelta(hours=2)
    RankingRunItem.objects.filter(run=run, poi=first).update(
        outcome="updated", finished_at=long_ago
    )
    # Its worker was killed mid-task: running for far longer than the task timeout.
    RankingRunItem.objects.filter(run=run, poi=second).update(
        outcome="running", task_id="lost-task", started_at=long_ago
    )
    url = reverse("image_ranking:run_progress", args=[run.pk])
    response = staff_client.get(f"{url}?pois={second.pk}&shown={second.pk}r", **HTMX)
    run.refresh_from_db()
    assert run.status == "finished" and not run.is_active
    item = RankingRunItem.objects.get(run=run, poi=second)
    assert item.outcome == "failed" and "timeout" in item.reason
    assert "1 failed" in response.text and "rankingRunFinished" in response["HX-Trigger"]
    assert oob_cards(response.text) == [second.pk]
    assert PoiRanking.objects.get(poi=second).validation is not None  # flagged: no image


def test_cancel_ends_the_run_and_the_panel_shows_its_tally(staff_client, staff, running):
    _, (first, second), run = running
    set_item(run, first, "updated")
    html = staff_client.get(DASH).text
    assert "data-cancel-run" in html
    url = reverse("image_ranking:cancel_run", args=[run.pk])
    response = staff_client.post(url, **HTMX)
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.status == "cancelled" and run.active_key is None
    assert RankingRunItem.objects.get(run=run, poi=second).outcome == "cancelled"
    text = response.text
    assert 'data-status="cancelled"' in text and "1 updated" in text and "1 cancelled" in text
    assert "data-cancel-run" not in text and 'hx-trigger="every 2s"' not in text
    assert "rankingRunFinished" in response["HX-Trigger"]
    assert "cancelled by curator" in text  # the run's message says who
    # Cancelling again: refused, nothing changes.
    again = staff_client.post(url, **HTMX)
    assert again.status_code == 409 and b"ended already" in again.content
    # Without JavaScript the same form redirects back with a message.
    response = staff_client.post(url, {"return_to": "status=missing"})
    assert response.status_code == 302 and response["Location"].endswith("?status=missing")


def test_a_cancelled_run_frees_its_key_so_the_same_run_can_start_again(staff_client, pois):
    start = reverse("image_ranking:start_run")
    first = staff_client.post(start, {"scope": "missing"}, **HTMX)
    assert first.status_code == 200
    run = RankingRun.objects.get()
    assert staff_client.post(start, {"scope": "missing"}, **HTMX).status_code == 409
    staff_client.post(reverse("image_ranking:cancel_run", args=[run.pk]), **HTMX)
    assert OrmQ.objects.count() == 0  # its queued tasks left the broker
    assert staff_client.post(start, {"scope": "missing"}, **HTMX).status_code == 200
    assert RankingRun.objects.count() == 2


def test_starting_a_run_marks_the_pages_cards_queued(staff_client, pois):
    _, _, poi_objs = pois
    ids = ",".join(str(p.pk) for p in poi_objs)
    response = staff_client.post(
        reverse("image_ranking:start_run"), {"scope": "missing", "pois": ids}, **HTMX
    )
    missing = [p.pk for p in poi_objs if not p.image_file]
    assert sorted(oob_cards(response.text)) == sorted(missing)
    assert response.text.count('data-live="pending"') == len(missing)
    assert "4 POIs queued" in response.text  # the status line
    assert f"shown={missing[0]}q" in poll_url(response.text).replace("%2C", ",")


def test_a_one_poi_re_rank_card_follows_its_own_run(staff_client, pois):
    _, _, poi_objs = pois
    poi = poi_objs[1]
    staff_client.post(reverse("image_ranking:rerank", args=[poi.pk]), **HTMX)
    run = RankingRun.objects.get()
    card_url = reverse("image_ranking:poi_card", args=[poi.pk])
    html = staff_client.get(f"{card_url}?run={run.pk}").text
    assert f'data-watch-run="{run.pk}"' in html and "Re-rank queued" in html
    set_item(run, poi, "running")
    assert "Re-ranking…" in staff_client.get(f"{card_url}?run={run.pk}").text
    set_item(run, poi, "flagged")
    RankingRun.objects.filter(pk=run.pk).update(status="finished", active_key=None)
    html = staff_client.get(f"{card_url}?run={run.pk}").text
    assert "data-watch-run" not in html and 'hx-trigger="load' not in html  # done: it stops
