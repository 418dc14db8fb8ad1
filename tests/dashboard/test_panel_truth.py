"""The run panel tells the truth during a run: the header counts follow the live cards, a
cancelled run keeps polling until its POIs in hand are recorded and says what it ranked, a
one-POI re-rank queued behind a batch says so, and the "tasks held" line only speaks when the
cluster looks dead, never of more tasks than the run has open."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from cities.models import PointOfInterest
from image_ranking.models import PoiRanking, RankingRun, RankingRunItem
from image_ranking.review import live, runpanel
from tests.dashboard.factories import make_pois, make_run
from tests.dashboard.test_live import poll_url

pytestmark = pytest.mark.django_db

DASH = reverse("image_ranking:dashboard")
HTMX = {"HTTP_HX_REQUEST": "true"}


def polls(html: str) -> bool:
    return 'hx-trigger="every 2s"' in html.split(">")[0] + html.split(">")[1]


def oob_counts(html: str) -> dict[str, int] | None:
    """The header counts the answer swaps out of band, or None."""
    block = re.search(r'<dl id="counts" class="counts" hx-swap-oob="true">.*?</dl>', html, re.S)
    if not block:
        return None
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', block.group(0))}


def set_item(run, poi, outcome: str) -> None:
    fields = {"outcome": outcome}
    if outcome not in ("pending", "running"):
        fields["finished_at"] = timezone.now()
    RankingRunItem.objects.filter(run=run, poi=poi).update(**fields)


def store_image(poi) -> None:
    """What the pipeline leaves when it stores a winner."""
    PointOfInterest.objects.filter(pk=poi.pk).update(image_file=f"cities/images/pois/{poi.pk}.jpg")
    PoiRanking.objects.filter(poi=poi).update(status="updated", best_score=6.6, validation=None)


@pytest.fixture
def running(db):
    """A page of 4 POIs (0 and 3 have images); a batch run has 1 and 2 queued."""
    _, _, pois = make_pois(4, 2, image_every=3, flag_every=0)
    run = make_run([pois[1], pois[2]], ["pending", "pending"])
    return pois, run


# --- 1. The header counts follow the live cards -------------------------------------------


def test_a_poll_that_swaps_a_card_swaps_the_header_counts_too(staff_client, running):
    pois, run = running
    page = staff_client.get(DASH).text
    assert 'data-count="missing">2<' in page
    url = poll_url(page)
    assert oob_counts(staff_client.get(url, **HTMX).text) is None  # nothing changed

    set_item(run, pois[1], "updated")
    store_image(pois[1])
    answer = staff_client.get(url, **HTMX).text
    counts = oob_counts(answer)
    assert counts and counts["missing"] == 1 and counts["has_image"] == 3
    # The next poll knows the page now shows that: nothing more to swap.
    assert oob_counts(staff_client.get(poll_url(answer), **HTMX).text) is None


def test_the_counts_follow_a_poi_off_the_page(staff_client, running):
    """A POI the page does not show (another page) still moves the counts: the poll URL
    carries the processed count the page shows."""
    pois, run = running
    url = poll_url(staff_client.get(DASH).text)
    url = re.sub(r"(pois|shown)=[^&]*&?", "", url)  # watch no card
    assert oob_counts(staff_client.get(url, **HTMX).text) is None
    set_item(run, pois[2], "flagged")
    response = staff_client.get(url, **HTMX)
    assert response.status_code == 200
    counts = oob_counts(response.text)
    assert counts is not None and counts["in_lists"] == 4


def test_the_counts_keep_the_pages_city_filter(staff_client, running):
    pois, run = running
    make_pois(3, 1, city_name="Porto", list_title="Porto picks", image_every=0)
    page = staff_client.get(DASH, {"city": pois[0].city_id}).text
    url = poll_url(page)
    assert "return_to=" in url
    set_item(run, pois[1], "updated")
    store_image(pois[1])
    counts = oob_counts(staff_client.get(url, **HTMX).text)
    assert counts["in_lists"] == 4 and counts["missing"] == 1  # Lisbon's, not all 7
    unfiltered = oob_counts(staff_client.get(re.sub(r"&return_to=.*", "", url), **HTMX).text)
    assert unfiltered["in_lists"] == 7


def test_the_last_poll_swaps_the_counts(staff_client, running):
    _, run = running
    url = poll_url(staff_client.get(DASH).text)
    RankingRun.objects.filter(pk=run.pk).update(status="finished", active_key=None)
    response = staff_client.get(url, **HTMX)
    assert oob_counts(response.text) is not None
    assert "rankingRunFinished" in response["HX-Trigger"]


def test_an_unchanged_poll_costs_no_query_more(staff_client, running):
    pois, run = running
    url = poll_url(staff_client.get(DASH).text)
    staff_client.get(url, **HTMX)  # the session and the sweep claim settle
    with CaptureQueriesContext(connection) as unchanged:
        assert oob_counts(staff_client.get(url, **HTMX).text) is None
    sql = " ".join(q["sql"] for q in unchanged.captured_queries)
    assert "imagetrainingdata" not in sql.lower()  # the counts' queries
    set_item(run, pois[1], "running")
    with CaptureQueriesContext(connection) as changed:
        assert oob_counts(staff_client.get(url, **HTMX).text) is not None
    # the changed card (its queries) and the counts (two) come only with a change
    assert len(changed.captured_queries) > len(unchanged.captured_queries) + 2


# --- 2. Cancel: keep polling while POIs are in hand; a cancelled run's panel -------------------


@pytest.fixture
def batch(db):
    _, _, pois = make_pois(6, 2, image_every=0, flag_every=0)
    run = make_run(pois[:5], ["updated", "running", "running", "pending", "pending"])
    return pois, run


def test_after_cancel_the_panel_polls_until_the_pois_in_hand_are_recorded(staff_client, batch):
    pois, run = batch
    response = staff_client.post(reverse("image_ranking:cancel_run", args=[run.pk]), **HTMX)
    text = response.text
    assert polls(text), "the panel stopped polling with 2 POIs still being ranked"
    assert "Cancelling: 2 POIs being ranked finish first; 1 of 5 ranked so far" in text
    assert "2 ranking now" in text and "data-cancel-run" not in text
    url = poll_url(text)

    set_item(run, pois[1], "ranked")
    answer = staff_client.get(url, **HTMX)
    assert polls(answer.text) and "rankingRunFinished" not in answer.get("HX-Trigger", "")
    assert "1 POI being ranked finishes first" in answer.text

    set_item(run, pois[2], "flagged")
    final = staff_client.get(poll_url(answer.text), **HTMX)
    assert not polls(final.text)
    assert "rankingRunFinished" in final["HX-Trigger"]
    assert (
        "Cancelled: 3 of 5 ranked before the cancel (1 updated, 1 ranked, 1 flagged), "
        "2 not started." in final.text
    )
    # Cancelled POIs are not ranked: the figure says 3 of 5 ranked, not "5 / 5 processed".
    assert "<b data-processed>3</b> / <span data-total>5</span> ranked" in final.text
    assert oob_counts(final.text) is not None  # the header tells the truth too


def test_a_cancelled_runs_bar_does_not_show_the_cancelled_as_done(staff_client, batch):
    pois, run = batch
    staff_client.post(reverse("image_ranking:cancel_run", args=[run.pk]), **HTMX)
    set_item(run, pois[1], "ranked")
    set_item(run, pois[2], "ranked")
    html = staff_client.get(DASH).text
    panel = re.search(r'<div id="run-progress".*?\n</div>', html, re.S).group(0)
    assert 'aria-valuenow="3"' in panel  # 3 ranked of 5, not 5 of 5
    assert re.search(r'data-bar-done style="width: 60%', panel)
    assert re.search(r"data-bar-cancelled [^>]*width: 40%", panel)
    assert "2 not started" in panel and not polls(panel)


def test_a_cancelled_run_whose_worker_died_stops_polling_after_the_task_timeout(
    staff_client, batch
):
    _, run = batch
    staff_client.post(reverse("image_ranking:cancel_run", args=[run.pk]), **HTMX)
    RankingRun.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(hours=1))
    response = staff_client.get(reverse("image_ranking:run_progress", args=[run.pk]), **HTMX)
    assert not polls(response.text) and "rankingRunFinished" in response["HX-Trigger"]
    assert "Cancelled: 1 of 5 ranked before the cancel (1 updated), 2 not started." in (
        response.text
    )
    assert "2 never recorded" in response.text


# --- 3. A one-POI re-rank queued behind a batch says so ------------------------------------------


def test_a_queued_re_rank_says_which_run_it_waits_behind(staff_client, batch):
    pois, run = batch
    rerank = make_run([pois[5]], ["pending"], kind="poi")
    card_url = reverse("image_ranking:poi_card", args=[pois[5].pk]) + f"?run={rerank.pk}"
    staff_client.get(card_url)  # the sweep's claim: the next polls within 10 s skip it
    with CaptureQueriesContext(connection) as waiting:
        html = staff_client.get(card_url).text
    assert f"Re-rank queued behind run {run.pk} (4 POIs ahead)" in html
    assert f'data-watch-run="{rerank.pk}"' in html

    RankingRun.objects.filter(pk=run.pk).update(status="finished", active_key=None)
    with CaptureQueriesContext(connection) as alone:
        html = staff_client.get(card_url).text
    assert "Re-rank queued…" in html and "behind" not in html
    assert len(waiting.captured_queries) <= len(alone.captured_queries) + 1

    set_item(rerank, pois[5], "running")
    assert "Re-ranking…" in staff_client.get(card_url).text


def test_a_batch_started_after_the_re_rank_is_not_ahead_of_it(staff_client, db):
    _, _, pois = make_pois(4, 1, image_every=0, flag_every=0)
    rerank = make_run([pois[0]], ["pending"], kind="poi")
    make_run(pois[1:], ["pending"] * 3)
    card_url = reverse("image_ranking:poi_card", args=[pois[0].pk]) + f"?run={rerank.pk}"
    html = staff_client.get(card_url).text
    assert "Re-rank queued…" in html and "behind" not in html


def test_behind_text_names_every_run_ahead():
    assert live.behind_text([(5, 1)]) == "run 5 (1 POI ahead)"
    assert live.behind_text([(5, 30), (7, 10)]) == "runs 5 and 7 (40 POIs ahead)"


# --- 4. The "tasks held" line --------------------------------------------------------------------


def hold(n: int, seconds: float) -> None:
    lock = timezone.now() + timedelta(seconds=seconds)
    for _ in range(n):
        OrmQ.objects.create(key=settings.Q_CLUSTER["name"], payload="x", lock=lock)


@pytest.fixture
def nearly_done(db, settings):
    """35 of 39 processed, 4 open; 7 tasks locked by the cluster (retry: 6 min)."""
    settings.WIKIMEDIA_RATE_PER_HOUR = 500
    _, _, pois = make_pois(39, 1, image_every=0, flag_every=0, bulk=True)
    run = make_run(pois, ["ranked"] * 35 + ["running"] * 2 + ["pending"] * 2)
    hold(7, settings.Q_CLUSTER["retry"])
    return run


def test_a_healthy_run_says_nothing_about_held_tasks(staff_client, nearly_done):
    run = nearly_done
    html = staff_client.get(reverse("image_ranking:run_progress", args=[run.pk]), **HTMX).text
    assert "data-held" not in html and "held by a worker" not in html
    assert "then up to" not in html


def test_the_panel_counts_the_runs_running_items_not_the_brokers_locked_rows(nearly_done):
    run = nearly_done
    tally = run.tally()
    held = runpanel.held_tasks(run, tally, live.progress_of(run, tally))
    assert held.count == 2  # its running items; 7 locked broker rows say nothing of this run


def test_a_stalled_run_says_what_is_being_ranked_and_when_a_dead_worker_is_noticed(
    staff_client, nearly_done
):
    run = nearly_done
    ten_min_ago = timezone.now() - timedelta(minutes=10)
    RankingRunItem.objects.filter(run=run).exclude(finished_at=None).update(finished_at=ten_min_ago)
    four_min_ago = timezone.now() - timedelta(minutes=4)  # within the 5 min task timeout
    RankingRunItem.objects.filter(run=run, outcome="running").update(started_at=four_min_ago)
    RankingRun.objects.filter(pk=run.pk).update(started_at=ten_min_ago - timedelta(minutes=5))
    html = staff_client.get(reverse("image_ranking:run_progress", args=[run.pk]), **HTMX).text
    held = re.search(r"<p [^>]*data-held>([^<]*)</p>", html).group(1)
    assert held.startswith("No POI of this run finished for 10 min; 2 are being ranked.")
    # 5 min task timeout + the sweep's grace - 4 min: the sweep ends them within about 1 min
    assert "they end as failed within 1 min" in held and "then up to" not in held
