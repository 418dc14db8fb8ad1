"""Moving back with the keyboard never leaves the focused tile under the sticky filter bar."""

from __future__ import annotations

import pytest

from tests.browser.conftest import logged_in_page
from tests.browser.test_dashboard_browser import commons_urls, expect
from tests.dashboard.factories import make_pois

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_tile_reached_going_back_is_below_the_sticky_filter_bar(
    browser, live_server, curator, commons_server
):
    make_pois(8, 2, image_every=0, flag_every=0, urls=commons_urls(commons_server))
    page = logged_in_page(browser, live_server.url, curator)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto("/image-ranking/")
    page.keyboard.press("j")
    for _ in range(5):
        page.keyboard.press("n")
    focused = page.locator(".tile:focus")
    expect(focused).to_have_count(1)
    # The curator scrolls on until the focused POI's tile sits at the top of the window.
    page.evaluate("document.activeElement.scrollIntoView({block: 'start'})")
    page.keyboard.press("p")  # back to the previous POI, which is now above the window
    top = page.evaluate("document.activeElement.getBoundingClientRect().top")
    bar = page.evaluate("document.querySelector('.filters').getBoundingClientRect().bottom")
    assert top >= bar, (top, bar)
