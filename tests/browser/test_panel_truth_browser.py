"""In Chromium: the header counts change with the live cards during a run (the panel's poll
swaps them out of band), without a reload; after a cancel, the panel keeps polling until the
POI in hand is recorded and ends with the true tally."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from cities.models import PointOfInterest
from image_ranking.models import PoiRanking, RankingRunItem
from tests.browser.conftest import logged_in_page
from tests.dashboard.factories import make_pois, make_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_header_counts_follow_the_run_and_a_cancel_waits_for_the_poi_in_hand(
    browser, live_server, curator
):
    _, _, pois = make_pois(3, 2, image_every=0, flag_every=0)
    stored, in_hand, _ = pois
    run = make_run(pois, ["running", "running", "pending"])
    page = logged_in_page(browser, live_server.url, curator)
    page.goto("/image-ranking/")
    page.evaluate("window.__sameDocument = true")
    missing = page.locator("#counts [data-count=missing]")
    has_image = page.locator("#counts [data-count=has_image]")
    expect(missing).to_have_text("3")
    expect(has_image).to_have_text("0")

    # The pipeline stores the first POI's image (the in-memory database is shared).
    PointOfInterest.objects.filter(pk=stored.pk).update(image_file="cities/images/pois/x.jpg")
    PoiRanking.objects.filter(poi=stored).update(status="updated", validation=None)
    RankingRunItem.objects.filter(run=run, poi=stored).update(
        outcome="updated", finished_at=timezone.now()
    )
    expect(has_image).to_have_text("1", timeout=8000)
    expect(missing).to_have_text("2")

    page.locator("#run-progress [data-cancel-run]").click()
    progress = page.locator("#run-progress")
    expect(progress).to_have_attribute("data-status", "cancelled")
    expect(progress.locator("[data-cancel-summary]")).to_contain_text("1 POI being ranked")
    # The POI in hand finishes after the cancel: the panel, still polling, tells it.
    RankingRunItem.objects.filter(run=run, poi=in_hand).update(
        outcome="flagged", finished_at=timezone.now()
    )
    expect(progress.locator("[data-cancel-summary]")).to_have_text(
        "Cancelled: 2 of 3 ranked before the cancel (1 updated, 1 flagged), 1 not started.",
        timeout=8000,
    )
    expect(progress).not_to_have_attribute("hx-trigger", "every 2s")
    expect(progress.locator("[data-bar-cancelled]")).to_have_count(1)
    assert page.evaluate("window.__sameDocument === true")  # no reload
