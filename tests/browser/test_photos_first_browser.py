"""Photos first, in a real Chromium at 1440 and 390 px (issue 18): a photo on the first
screen, whole and in its own colours; the focused review labels with keys only and moves
over the view, tile-less flagged POIs included; a click on a tile a re-rank replaced
refreshes its card, DEBUG on or off; one undo for a label given to a selection across POIs;
the export of a filtered view; the report's numbers are the dashboard's. Also the faster
keys: "this one good, the others bad", across page boundaries, focus after an undo.
DASHBOARD_SCREENSHOTS=1 writes the docs' pictures."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from image_ranking.models import Candidate, ImageTrainingData
from image_ranking.review import selectors
from tests.browser.conftest import logged_in_page, screenshot_path
from tests.browser.test_dashboard_browser import commons_urls, expect, mark_document, same_document
from tests.dashboard.factories import make_pois
from tests.fakes.images import PHOTO_NAMES, photo

pytestmark = [pytest.mark.browser, pytest.mark.slow]
WIDTHS = [(1440, 900), (390, 844)]


def labels() -> dict[str, str]:
    return dict(ImageTrainingData.objects.values_list("image_url", "label"))


def a_city_to_review(commons_server, media_root):
    """Six POIs with real photos (portrait and landscape), the first (by name) flagged without
    any candidate, as a run leaves a POI Commons has nothing for; stored files for the images."""
    city, _, pois = make_pois(6, 5, image_every=2, flag_every=3, urls=commons_urls(commons_server))
    Candidate.objects.filter(poi=pois[0]).delete()
    for poi in pois:
        if poi.image_file:
            path = media_root / poi.image_file.name
            path.parent.mkdir(parents=True, exist_ok=True)
            photo(PHOTO_NAMES[2]).save(path)
    return city, pois


def loaded(page, selector: str) -> None:
    """Every image of `selector` on the screen has loaded (lazy ones below it need not)."""
    page.wait_for_function(
        """s => [...document.querySelectorAll(s)]
             .filter(i => i.getBoundingClientRect().top < innerHeight)
             .every(i => i.complete && i.naturalWidth > 0)""",
        arg=selector,
    )


@pytest.mark.parametrize(("width", "height"), WIDTHS)
def test_the_first_screen_shows_whole_photos_in_their_own_colours(
    browser, live_server, curator, commons_server, media_root, tmp_path, width, height
):
    city, _ = a_city_to_review(commons_server, media_root)
    page = logged_in_page(browser, live_server.url, curator, width=width, height=height)
    page.goto(f"/image-ranking/?city={city.pk}")
    page.wait_for_load_state("networkidle")  # the screen as it settles: filter counts swapped in
    first_screen = page.evaluate(
        """h => [...document.querySelectorAll('#poi-list .tile img')].filter(i => {
             const r = i.getBoundingClientRect();  // at least 60 px of it on the screen
             return r.width > 40 && Math.min(r.bottom, h) - Math.max(r.top, 0) >= 60;
           }).length""",
        height,
    )
    assert first_screen >= 1, "no photo on the first screen"
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # every photo loads
    page.wait_for_timeout(300)
    page.evaluate("window.scrollTo(0, 0)")
    loaded(page, "#poi-list .tile img")
    shapes = page.evaluate(
        """() => [...document.querySelectorAll('#poi-list .tile img')].filter(i => i.naturalWidth)
             .map(i => { const r = i.getBoundingClientRect(), s = getComputedStyle(i);
               const up = [i, i.closest('.thumb'), i.closest('.tile')];
               return {box: r.width / r.height, photo: i.naturalWidth / i.naturalHeight,
                       fit: s.objectFit, filters: up.map(e => getComputedStyle(e).filter),
                       opacity: up.map(e => getComputedStyle(e).opacity)}; })"""
    )
    assert len(shapes) >= 10
    for shape in shapes:
        assert abs(shape["box"] - shape["photo"]) / shape["photo"] < 0.03, shape  # all of it
        assert shape["fit"] == "contain"
        assert shape["filters"] == ["none"] * 3 and shape["opacity"] == ["1"] * 3, shape
    # The marks sit in a row under the photo: no badge covers the score.
    overlaps = page.evaluate(
        """() => [...document.querySelectorAll('#poi-list .tile')].filter(t => {
             const s = t.querySelector('.score'), b = t.querySelector('.badge');
             if (!s || !b) return false;
             const r = s.getBoundingClientRect(), q = b.getBoundingClientRect();
             return r.left < q.right && q.left < r.right && r.top < q.bottom && q.top < r.bottom;
           }).map(t => t.id)"""
    )
    assert overlaps == []
    # Below threshold, ineligible and damaged are words on a badge, never a tint.
    expect(page.locator(".note--below").first).to_be_visible()
    expect(page.locator(".note--ineligible").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.evaluate("window.scrollTo(0, 0)")
    name = "dashboard-first-screen.png" if width == 1440 else "dashboard-narrow.png"
    page.screenshot(path=str(screenshot_path(tmp_path, name)))


@pytest.mark.parametrize(("width", "height"), WIDTHS)
def test_the_focused_review_labels_20_candidates_with_keys_and_reaches_a_tileless_flagged_poi(
    browser, live_server, curator, commons_server, media_root, tmp_path, width, height
):
    city, _, pois = make_pois(8, 3, image_every=2, flag_every=3, urls=commons_urls(commons_server))
    Candidate.objects.filter(poi=pois[3]).delete()  # flagged, no candidates, no fallback
    for poi in pois:  # the stored files of the current images
        if poi.image_file:
            path = media_root / poi.image_file.name
            path.parent.mkdir(parents=True, exist_ok=True)
            photo(PHOTO_NAMES[(poi.pk + 1) % len(PHOTO_NAMES)]).save(path)
    page = logged_in_page(browser, live_server.url, curator, width=width, height=height)
    page.goto(f"/image-ranking/?city={city.pk}")
    mark_document(page)
    page.keyboard.press("j")
    page.keyboard.press("Enter")  # the focused review of the focused image
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'focus'")
    assert f"city={city.pk}" in page.url and "poi=" in page.url  # a link to send

    done, tileless_seen = 0, False
    while done < 20:
        image = page.locator("#focus").get_attribute("data-image")
        if not image:  # a POI without candidates: nothing to label, n goes on
            tileless_seen = True
            expect(page.locator("#focus")).to_contain_text("No candidates")
            page.keyboard.press("n")
        else:
            page.keyboard.press("g" if done % 3 == 0 else "b")
            done += 1
        expect(page.locator("#focus")).not_to_have_attribute("data-image", image or "")
    assert tileless_seen
    assert ImageTrainingData.objects.count() == 20
    # p comes back to the tile-less flagged POI; f from the first POI finds a flagged one.
    while page.locator("#focus").get_attribute("data-poi") != str(pois[3].pk):
        before = page.locator("#focus").get_attribute("data-poi")
        page.keyboard.press("p")
        expect(page.locator("#focus")).not_to_have_attribute("data-poi", before)
    expect(page.locator(".flag-reason")).to_be_visible()
    # At 390 px the photo leaves the title, facts and the actions on the screen.
    page.keyboard.press("j")
    expect(page.locator("#focus")).not_to_have_attribute("data-poi", str(pois[3].pk))
    loaded(page, "#focus .pane--candidate img")
    for selector in (
        "[data-focus=title]",
        "#focus-actions button[data-key=good]",
        "[data-nav=next-poi]",
    ):
        box = page.locator(selector).bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= height, selector
    page.keyboard.press("z")  # 100 %
    zoomed = page.locator("#focus .pane--candidate img").evaluate(
        "i => Math.round(i.getBoundingClientRect().width) === i.naturalWidth"
    )
    assert zoomed
    page.keyboard.press("z")
    name = "focused-review.png" if width == 1440 else "focused-review-narrow.png"
    page.screenshot(path=str(screenshot_path(tmp_path, name)))
    page.keyboard.press("Escape")  # back to the grid, on that POI
    expect(page.locator("#poi-list")).to_be_visible()
    assert f"city={city.pk}" in page.url


@pytest.mark.parametrize("debug", [True, False])
def test_a_click_on_a_tile_a_rerank_replaced_refreshes_its_card_with_a_message(
    browser, live_server, curator, commons_server, settings, debug
):
    settings.DEBUG = debug
    _, _, pois = make_pois(2, 3, image_every=0, flag_every=0, urls=commons_urls(commons_server))
    gone = Candidate.objects.filter(poi=pois[0]).order_by("search_rank").first()
    page = logged_in_page(browser, live_server.url, curator)
    page.goto("/image-ranking/")
    mark_document(page)
    # The page's own requests (the filter counts) are done before this thread writes: SQLite's
    # shared in-memory test database refuses a write while another thread reads the table.
    page.wait_for_load_state("networkidle")
    # Another tab re-ranks the POI: its candidates are new rows.
    fresh = Candidate.objects.filter(poi=pois[0]).order_by("search_rank").last()
    Candidate.objects.filter(poi=pois[0]).exclude(pk=fresh.pk).delete()

    page.locator(f"#t-c{gone.pk}").hover()
    page.locator(f"#t-c{gone.pk} button[data-key=good]").click()

    expect(page.locator(f"#t-c{gone.pk}")).to_have_count(0)  # the card as it is now
    expect(page.locator(f"#poi-{pois[0].pk} #t-c{fresh.pk}")).to_be_visible()
    expect(page.locator("#toast")).to_contain_text("a re-rank replaced them")
    expect(page.locator(".ir-top h1")).to_be_visible()  # no page swapped in
    assert same_document(page) and not ImageTrainingData.objects.exists()


def test_a_label_given_to_a_selection_across_pois_and_its_single_undo(
    browser, live_server, curator, commons_server
):
    _, _, pois = make_pois(3, 2, image_every=0, flag_every=0, urls=commons_urls(commons_server))
    page = logged_in_page(browser, live_server.url, curator)
    page.goto("/image-ranking/")
    mark_document(page)
    page.keyboard.press("j")
    page.keyboard.press("x")  # select, then on to the next POIs' first images
    for _ in range(2):
        page.keyboard.press("n")
        page.keyboard.press("x")
    bar = page.locator("#selection-bar")
    expect(bar).to_contain_text("3 images of 3 POIs selected")
    bar.get_by_role("button", name="Bad", exact=True).click()
    expect(page.locator("#toast")).to_contain_text("3 images of 3 POIs marked bad")
    expect(bar).to_be_hidden()
    assert sorted(labels().values()) == ["bad"] * 3
    assert {ImageTrainingData.objects.values_list("poi_id", flat=True).distinct().count()} == {3}
    expect(page.locator("#undo-button .pill")).to_have_text("1")
    page.keyboard.press("u")
    expect(page.locator("#toast")).to_contain_text("3 bad labels taken back")
    assert labels() == {}
    for poi in pois:
        expect(page.locator(f"#poi-{poi.pk} .tile--bad")).to_have_count(0)
    assert same_document(page)


def test_the_export_of_a_filtered_view_has_exactly_its_rows(
    browser, live_server, curator, commons_server
):
    city, _, _ = make_pois(9, 3, image_every=3, flag_every=2, urls=commons_urls(commons_server))
    page = logged_in_page(browser, live_server.url, curator)
    page.goto(f"/image-ranking/?city={city.pk}")
    page.locator(".filters select[name=status]").select_option("flagged")
    page.wait_for_url(re.compile(r"status=flagged"))
    with page.expect_download() as download:
        page.locator("[data-export-view=csv]").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    shown = {
        int(pk)
        for pk in page.locator("#poi-list .poi").evaluate_all("els => els.map(e => e.id.slice(4))")
    }
    assert {int(r["poi_id"]) for r in rows} == shown
    view = selectors.matching(selectors.Filters(city_id=city.pk, status="flagged"))
    assert len(rows) == Candidate.objects.filter(poi__in=view).count()
    assert all(r["model_score"] and r["ranked_score"] for r in rows)


@pytest.mark.parametrize(("width", "height"), WIDTHS)
def test_the_coverage_reports_numbers_are_the_dashboards_counts(
    browser, live_server, curator, commons_server, tmp_path, width, height
):
    city, _, _ = make_pois(12, 3, image_every=3, flag_every=2, urls=commons_urls(commons_server))
    page = logged_in_page(browser, live_server.url, curator, width=width, height=height)
    page.goto(f"/image-ranking/?city={city.pk}")
    counts = {
        key: int(page.locator(f"[data-count={key}]").inner_text())
        for key in ("in_lists", "missing", "fallback", "flagged", "has_image")
    }
    with page.expect_navigation():
        page.get_by_role("link", name="Report").click()
    value = lambda label: int(page.locator(f'[data-value="{label}"]').inner_text())  # noqa: E731
    origins = ("Curated (there before ranking)", "Found by the pipeline", "Chosen by a curator")
    assert sum(value(f"origins:{o}") for o in origins) == counts["has_image"]
    assert value("origins:Category fallback (still needs a photo)") == counts["fallback"]
    assert value("origins:No image") + counts["fallback"] == counts["missing"]
    assert int(page.locator("[data-report=total]").inner_text().split()[0]) == counts["in_lists"]
    assert value("flags:Below threshold") == counts["flagged"]
    assert page.locator("svg.hbars").count() >= 3 and page.locator("script").count() == 0
    name = "report.png" if width == 1440 else "report-narrow.png"
    page.screenshot(path=str(screenshot_path(tmp_path, name)), full_page=True)


def test_only_this_key_marks_one_good_and_the_others_bad(
    browser, live_server, curator, commons_server
):
    _, _, pois = make_pois(2, 3, image_every=0, flag_every=0, urls=commons_urls(commons_server))
    first, second, third = Candidate.objects.filter(poi=pois[0]).order_by("search_rank")
    page = logged_in_page(browser, live_server.url, curator)
    page.goto("/image-ranking/")
    mark_document(page)

    page.locator(f"#t-c{second.pk}").focus()
    page.keyboard.press("Shift+G")

    expect(page.locator(f"#t-c{second.pk}")).to_have_class(re.compile(r"\btile--good\b"))
    for other in (first, third):
        expect(page.locator(f"#t-c{other.pk}")).to_have_class(re.compile(r"\btile--bad\b"))
    expect(page.locator(f"#t-c{second.pk}")).to_be_focused()  # the card was swapped in
    expect(page.locator("[data-count=labelled]")).to_have_text("3")
    expect(page.locator("#undo-button .pill")).to_have_text("1")  # one action, one undo step
    assert labels() == {second.image_url: "good", first.image_url: "bad", third.image_url: "bad"}
    assert same_document(page)


def test_keys_cross_page_boundaries_and_keep_the_filters(
    browser, live_server, curator, commons_server
):
    city, _, pois = make_pois(11, 1, image_every=0, flag_every=0, urls=commons_urls(commons_server))
    make_pois(2, 1, city_name="Porto", image_every=0, flag_every=0)  # filtered out
    by_poi = {c.poi_id: c for c in Candidate.objects.filter(poi__in=pois)}
    tenth, eleventh = by_poi[pois[9].pk], by_poi[pois[10].pk]
    page = logged_in_page(browser, live_server.url, curator)
    page.goto(f"/image-ranking/?city={city.pk}&per_page=10")

    page.locator(f"#t-c{tenth.pk}").focus()  # the last tile of page 1
    with page.expect_navigation():
        page.keyboard.press("j")
    expect(page.locator(f"#t-c{eleventh.pk}")).to_be_focused()
    assert page.url.endswith(f"?city={city.pk}&per_page=10&page=2")  # filters kept, no fragment

    with page.expect_navigation():
        page.keyboard.press("k")  # back: the previous page's last tile
    expect(page.locator(f"#t-c{tenth.pk}")).to_be_focused()
    assert page.url.endswith(f"?city={city.pk}&per_page=10")

    with page.expect_navigation():
        page.keyboard.press("n")  # next POI, on the next page
    expect(page.locator(f"#t-c{eleventh.pk}")).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("p")
    expect(page.locator(f"#poi-{pois[9].pk} .tile:not(.tile--missing)").first).to_be_focused()


def test_focus_follows_undo_to_the_image_whose_label_it_took_back(
    browser, live_server, curator, commons_server
):
    _, _, pois = make_pois(2, 3, image_every=0, flag_every=0, urls=commons_urls(commons_server))
    first = Candidate.objects.filter(poi=pois[0]).order_by("search_rank").first()
    elsewhere = Candidate.objects.filter(poi=pois[1]).order_by("search_rank").last()
    page = logged_in_page(browser, live_server.url, curator)
    page.goto("/image-ranking/")
    mark_document(page)

    page.locator(f"#t-c{first.pk}").focus()
    page.keyboard.press("g")
    expect(page.locator(f"#t-c{first.pk}")).to_have_class(re.compile(r"\btile--good\b"))
    expect(page.locator("#undo-button .pill")).to_have_text("1")
    page.locator(f"#t-c{elsewhere.pk}").focus()  # the curator moved on

    page.keyboard.press("u")

    expect(page.locator(f"#t-c{first.pk}")).not_to_have_class(re.compile(r"\btile--good\b"))
    expect(page.locator(f"#t-c{first.pk}")).to_be_focused()
    assert not ImageTrainingData.objects.exists()
    assert same_document(page)


def test_n_and_p_stop_at_a_poi_without_photos_on_this_page_and_across_pages(
    browser, live_server, curator, commons_server
):
    city, _, pois = make_pois(12, 2, image_every=0, flag_every=0, urls=commons_urls(commons_server))
    for tileless in (pois[2], pois[9]):  # flagged by Commons: no candidates, no image
        Candidate.objects.filter(poi=tileless).delete()
    page = logged_in_page(browser, live_server.url, curator)
    page.goto(f"/image-ranking/?city={city.pk}&per_page=10")
    page.keyboard.press("j")
    page.keyboard.press("n")
    page.keyboard.press("n")
    expect(page.locator(f"#t-p{pois[2].pk}")).to_be_focused()  # its Missing tile
    for _ in range(7):
        page.keyboard.press("n")
    expect(page.locator(f"#t-p{pois[9].pk}")).to_be_focused()  # the last POI of the page
    with page.expect_navigation():
        page.keyboard.press("n")  # on to the next page
    expect(page.locator(f"#poi-{pois[10].pk} .tile:not(.tile--missing)").first).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("p")  # back: the previous page's last POI, photos or not
    expect(page.locator(f"#t-p{pois[9].pk}")).to_be_focused()


def test_an_error_stays_on_screen_while_the_run_panel_polls(
    browser, live_server, curator, commons_server
):
    from tests.dashboard.factories import make_run

    _, _, pois = make_pois(3, 2, image_every=0, flag_every=0, urls=commons_urls(commons_server))
    run = make_run(pois, ["pending"] * 3)  # the panel polls every 2 s
    page = logged_in_page(browser, live_server.url, curator)
    page.goto("/image-ranking/")
    page.keyboard.press("j")
    page.keyboard.press("g")  # a success ...
    toast = page.locator("#toast")
    expect(toast).to_contain_text("Marked good")
    page.locator("#tools summary").click()
    page.locator("[data-rank-missing]").click()  # ... then a refusal, within the success's fade
    expect(toast).to_contain_text(f"Run {run.pk}")
    expect(toast).to_have_class(re.compile(r"toast--error"))
    page.wait_for_timeout(5000)  # two polls and more than a success's life
    expect(toast).to_have_class(re.compile(r"toast--show"))
    expect(toast).to_contain_text(f"Run {run.pk}")
