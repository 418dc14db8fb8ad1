"""The status toast never stands in the way: clicks go through it, and the page keeps room
below its last controls, so scrolled to the end nothing it covers is a control. Checked at a
desktop (1440 px) and a phone (390 px) width, with screenshots."""

from __future__ import annotations

import pytest

from image_ranking.models import Candidate
from tests.browser.conftest import logged_in_page, screenshot_path
from tests.dashboard.factories import make_pois

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CONTROLS = "button, a, input, select, label"


def overlapping_controls(page) -> list[str]:
    """The visible controls whose box meets the shown toast's box."""
    return page.evaluate(
        """(selector) => {
            const t = document.getElementById("toast").getBoundingClientRect();
            const out = [];
            for (const el of document.querySelectorAll(selector)) {
                if (el.closest("#toast") || el.closest("[hidden]")) continue;
                const r = el.getBoundingClientRect();
                if (!r.width || !r.height) continue;
                const style = getComputedStyle(el);
                if (style.visibility === "hidden" || style.display === "none") continue;
                if (r.left < t.right && r.right > t.left && r.top < t.bottom && r.bottom > t.top)
                    out.push(el.outerHTML.slice(0, 80));
            }
            return out;
        }""",
        CONTROLS,
    )


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (390, 844)])
def test_the_toast_lets_clicks_through_and_covers_no_control_at_the_end(
    browser, live_server, curator, tmp_path, width, height
):
    _, _, pois = make_pois(3, 2, image_every=0, flag_every=0)
    cand = Candidate.objects.filter(poi=pois[-1]).order_by("search_rank").first()
    page = logged_in_page(browser, live_server.url, curator, width=width, height=height)
    page.goto("/image-ranking/")
    page.screenshot(path=str(screenshot_path(tmp_path, f"dashboard-top-{width}.png")))
    page.locator(f"#t-c{cand.pk}").hover()  # its action bar
    page.locator(f"#t-c{cand.pk} button[data-key=good]").click()
    toast = page.locator("#toast.toast--show")
    toast.wait_for(state="visible")
    assert toast.evaluate("el => getComputedStyle(el).pointerEvents") == "none"
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_timeout(200)
    assert overlapping_controls(page) == []
    page.screenshot(path=str(screenshot_path(tmp_path, f"dashboard-toast-{width}.png")))
    # Under the toast, a click reaches the control (when one is there mid-page).
    box = toast.bounding_box()
    target = page.evaluate(
        "([x, y]) => { const el = document.elementFromPoint(x, y); return el && el.id; }",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert target != "toast"
