"""In Chromium: a filter's option shows its count, choosing it narrows the grid to that many
POIs (kept in the URL), and the export of that view has exactly its rows."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from image_ranking.models import Candidate
from tests.browser.conftest import logged_in_page
from tests.browser.test_dashboard_browser import commons_urls, expect
from tests.dashboard.factories import make_pois

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_filter_with_its_count_narrows_the_grid_and_the_export_has_its_rows(
    browser, live_server, curator, commons_server
):
    city, _, pois = make_pois(12, 3, image_every=3, flag_every=2, urls=commons_urls(commons_server))
    damaged = pois[1::3]  # 4 POIs with a dark copy among their candidates
    Candidate.objects.filter(poi__in=damaged, search_rank=2).update(damage="dark copy of File:X")
    page = logged_in_page(browser, live_server.url, curator)
    page.goto(f"/image-ranking/?city={city.pk}&per_page=10")
    expect(page.locator("#poi-list .poi")).to_have_count(10)
    option = page.locator(".filters select[name=damage] option[value=damaged]")
    expect(option).to_have_text(re.compile(r"\(4\)$"))
    page.locator(".filters select[name=damage]").select_option("damaged")
    page.wait_for_url(re.compile(r"damage=damaged"))
    expect(page.locator("#poi-list .poi")).to_have_count(4)
    shown = {
        int(pk)
        for pk in page.locator("#poi-list .poi").evaluate_all("els => els.map(e => e.id.slice(4))")
    }
    assert shown == {poi.pk for poi in damaged}
    expect(page.locator(".filters-total")).to_contain_text("4 POIs")

    with page.expect_download() as download:
        page.locator("[data-export-view=csv]").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {int(r["poi_id"]) for r in rows} == shown
    assert len(rows) == Candidate.objects.filter(poi__in=damaged).count() == 12
    assert sum(1 for r in rows if r["damage"]) == 4
