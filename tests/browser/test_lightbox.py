"""The lightbox and the faster keys in a real Chromium: open an image large, label it from
there without a reload, close back to the tile; "this one good, the others bad" in one key;
the keys go on across page boundaries (filters kept); focus follows an undo."""

from __future__ import annotations

import re

import pytest

from image_ranking.models import Candidate, ImageTrainingData
from tests.browser.conftest import logged_in_page, screenshot_path
from tests.browser.test_dashboard_browser import commons_urls, expect, mark_document, same_document
from tests.dashboard.factories import make_pois
from tests.fakes.images import PHOTO_NAMES, photo

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def labels() -> dict[str, str]:
    return dict(ImageTrainingData.objects.values_list("image_url", "label"))


def test_lightbox_opens_shows_the_details_labels_with_keys_and_gives_focus_back(
    browser, live_server, curator, commons_server, tmp_path
):
    _, _, pois = make_pois(2, 4, image_every=0, flag_every=0, urls=commons_urls(commons_server))
    first, second, third, far = Candidate.objects.filter(poi=pois[0]).order_by("search_rank")
    Candidate.objects.filter(pk=first.pk).update(
        size=3_100_000,
        description_url="https://commons.wikimedia.org/wiki/File:Sight_1.jpg",
        relevance="its title shares “sight” with the POI's name",
    )
    Candidate.objects.filter(pk=second.pk).update(damage="dark copy of File:Sight 1.jpg")
    page = logged_in_page(browser, live_server.url, curator)
    page.goto("/image-ranking/")
    mark_document(page)

    page.locator(f"#t-c{first.pk} .thumb img").click()  # the image opens the lightbox

    expect(page.get_by_role("dialog", name=first.title)).to_be_visible()
    box = page.locator("#lightbox")
    expect(box).to_have_attribute("aria-modal", "true")
    expect(box.locator("[data-lb=resolution]")).to_have_text("4000\u00d73000")
    expect(box.locator("[data-lb=size]")).to_have_text(re.compile(r"3\.0\sMB"))
    expect(box.locator("[data-lb=mime]")).to_have_text("image/jpeg")
    expect(box.locator("[data-lb=rank]")).to_have_text("1")
    expect(box.locator("[data-lb=distance]")).to_have_text("0.3 km")
    expect(box.locator("[data-lb=score]")).to_have_text(f"{first.score:.2f} ± 1.40 (nima)")
    expect(box.locator("[data-lb=reasons]")).to_contain_text("Its title shares “sight”")
    link = box.get_by_role("link", name=re.compile("Commons description page"))
    expect(link).to_have_attribute("href", "https://commons.wikimedia.org/wiki/File:Sight_1.jpg")
    expect(link).to_have_attribute("target", "_blank")
    large = box.locator("#lb-img")
    expect(large).to_have_attribute("src", re.compile(r"/1280px-"))  # the 1280 px rendition
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=large.element_handle()
    )
    assert large.evaluate("img => img.naturalWidth") == 1280

    # Focus stays inside the dialog.
    for _ in range(14):
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('lightbox').contains(document.activeElement)")

    page.keyboard.press("g")  # good, and on to the next image, in the lightbox
    expect(page.locator(f"#t-c{first.pk}")).to_have_class(re.compile(r"\btile--good\b"))
    expect(box.locator("[data-lb=title]")).to_have_text(second.title)
    expect(box.locator("[data-lb=reasons]")).to_contain_text("Dark copy of File:Sight 1.jpg")
    page.keyboard.press("b")
    expect(page.locator(f"#t-c{second.pk}")).to_have_class(re.compile(r"\btile--bad\b"))
    expect(box.locator("[data-lb=title]")).to_have_text(third.title)
    page.keyboard.press("ArrowLeft")  # back to the one just labelled: the lightbox shows it
    expect(box.locator("[data-lb=mark]")).to_have_text("✗ bad")
    expect(box.locator("[data-lb-action=bad]")).to_have_attribute("aria-pressed", "true")
    page.locator("#lightbox .lb-box").focus()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=large.element_handle()
    )
    page.wait_for_timeout(300)
    page.screenshot(path=str(screenshot_path(tmp_path, "lightbox.png")))
    page.keyboard.press("l")  # not a key: nothing happens
    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(box.locator("[data-lb=reasons]")).to_contain_text("Not eligible: 12.5 km")
    assert labels() == {first.image_url: "good", second.image_url: "bad"}

    page.keyboard.press("Escape")
    expect(page.locator("#lightbox")).to_be_hidden()
    expect(page.locator(f"#t-c{far.pk}")).to_be_focused()  # the tile it showed last

    # Enter on a focused tile opens it too; Esc gives the focus back to that tile.
    page.locator(f"#t-c{second.pk}").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog", name=second.title)).to_be_visible()
    expect(page.locator("#lb-title")).to_have_text(second.title)
    page.keyboard.press("Escape")
    expect(page.locator(f"#t-c{second.pk}")).to_be_focused()
    page.keyboard.press(" ")
    expect(page.locator("#lightbox")).to_be_visible()
    page.locator("[data-lb-action=close]").click()
    expect(page.locator("#lightbox")).to_be_hidden()
    expect(page.locator(f"#t-c{second.pk}")).to_be_focused()
    assert same_document(page)


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
    expect(page.locator(f"#poi-{pois[9].pk} .tile").first).to_be_focused()

    # In the lightbox too: the next page opens with the lightbox on its first image.
    page.keyboard.press("o")
    expect(page.locator("#lightbox")).to_be_visible()
    with page.expect_navigation():
        page.keyboard.press("ArrowRight")
    expect(page.locator("#lightbox")).to_be_visible()
    expect(page.locator("#lb-title")).to_have_text(eleventh.title)


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


def test_full_titles_wrap_and_the_narrow_dashboard(
    browser, live_server, curator, commons_server, media_root, tmp_path
):
    _, _, pois = make_pois(3, 3, image_every=2, flag_every=0, urls=commons_urls(commons_server))
    for poi in pois:  # the stored files the current images show
        if poi.image_file:
            path = media_root / poi.image_file.name
            path.parent.mkdir(parents=True, exist_ok=True)
            photo(PHOTO_NAMES[1]).save(path)
    cand = Candidate.objects.filter(poi=pois[0]).order_by("search_rank").first()
    long_title = "File:" + "Very long Commons title of the sight seen from the river " * 2 + ".jpg"
    Candidate.objects.filter(pk=cand.pk).update(title=long_title)
    page = logged_in_page(browser, live_server.url, curator, width=390, height=844)
    page.goto("/image-ranking/")

    title = page.locator(f"#t-c{cand.pk} .tile-title")
    expect(title).to_have_text(long_title.removeprefix("File:"))
    assert title.evaluate("el => el.scrollWidth <= el.clientWidth")  # wrapped, not cut off
    assert page.evaluate("document.documentElement.scrollWidth <= 390")  # no sideways scroll
    # The top of the page and the first cards (a full page would be 6000 px tall).
    for img in page.locator("#poi-list img").all()[:4]:
        img.scroll_into_view_if_needed()
        page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle())
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(300)
    shot = screenshot_path(tmp_path, "dashboard-narrow.png")
    page.screenshot(
        path=str(shot), full_page=True, clip={"x": 0, "y": 0, "width": 390, "height": 2600}
    )
