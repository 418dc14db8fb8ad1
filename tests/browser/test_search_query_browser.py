"""A flagged POI in Chromium: the card says what was searched for; a curator types a better
query, and the POI is re-ranked with it by real Django-Q workers against the Commons
stand-in, without a page reload."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from cities.models import City, PoiList, PointOfInterest
from image_ranking.models import Candidate, PoiRanking
from image_ranking.pipeline.ranking import rank_poi
from tests.browser.conftest import (
    ThreadCluster,
    chromium,
    logged_in_page,
    screenshot_path,
    session_cookie,
)
from tests.fakes.images import photo

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_curators_query_re_ranks_a_flagged_poi(
    file_live_server, commons_server, nima_scorer, monkeypatch, settings, tmp_path
):
    settings.IMAGE_RANKING_FALLBACK = False
    curator = get_user_model().objects.create_user("curator", password="pw", is_staff=True)
    cookie = session_cookie(curator)
    city = City.objects.create(name="Lisbon", latitude=38.7223, longitude=-9.1393)
    poi = PointOfInterest.objects.create(city=city, name="Sé", category="see")
    PoiList.objects.create(title="Sights", city=city).pois.add(poi)
    own = commons_server.add_file("Sé de Lisboa.jpg", photo("coffee").resize((1200, 800)))
    commons_server.set_results("Sé de Lisboa", [own])
    assert rank_poi(poi.pk, threshold=0).outcome == "flagged"  # "Sé" alone finds nothing

    cluster = ThreadCluster().start()
    try:
        with chromium(monkeypatch) as browser:
            page = logged_in_page(browser, file_live_server, cookie)
            page.goto("/image-ranking/")
            card = page.locator(f"#poi-{poi.pk}")
            assert "filetype:bitmap Sé" in card.locator("[data-searched-for]").inner_text()
            page.evaluate("document.body.dataset.marker = 'same-document'")
            card.locator(".search-query summary").click()  # its form comes when it opens
            card.locator("input[name=query]").wait_for()
            page.screenshot(path=str(screenshot_path(tmp_path, "flagged-query.png")))
            card.locator("input[name=query]").fill("Sé de Lisboa")
            card.get_by_role("button", name="Save and re-rank").click()
            page.locator(f"#poi-{poi.pk} .tile--current img").wait_for(timeout=60_000)
            assert page.evaluate("document.body.dataset.marker") == "same-document"
            searched = page.locator(f"#poi-{poi.pk} [data-searched-for]").inner_text()
    finally:
        cluster.stop()
    assert "Sé de Lisboa (a curator's query)" in searched
    ranking = PoiRanking.objects.get(poi=poi)
    assert ranking.search_query == "Sé de Lisboa" and ranking.status == "updated"
    assert Candidate.objects.get(poi=poi, is_winner=True).title == own.title
    poi.refresh_from_db()
    assert poi.image_file
    assert [r.search_text for r in commons_server.api_requests()] == ["Sé", "Sé de Lisboa"]
