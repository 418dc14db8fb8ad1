"""The dashboard in a real Chromium: clicks and keys swap fragments without a reload, the
labels and images are really stored, and "Rank missing" runs Django-Q jobs against the
Commons stand-in while the progress bar follows them to the end."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth import get_user_model
from PIL import Image

from cities.models import City, PoiList, PointOfInterest
from image_ranking.models import Candidate, ImageTrainingData, PoiRanking, RankingRun
from image_ranking.review import calibration
from tests.browser.conftest import (
    ThreadCluster,
    chromium,
    logged_in_page,
    screenshot_path,
    session_cookie,
)
from tests.dashboard.factories import make_pois
from tests.fakes.images import PHOTO_NAMES, degrade, photo

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def upscaled(image: Image.Image, width: int = 1400) -> Image.Image:
    return image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)


def commons_urls(server):
    """Candidate URLs on the Commons stand-in: one real photo per search rank."""
    files = [server.add_file(f"{name}.jpg", upscaled(photo(name))) for name in PHOTO_NAMES]

    def urls(poi_index: int, rank: int) -> tuple[str, str]:
        file = files[(poi_index + rank) % len(files)]
        return server.url_for_original(file), server.url_for_thumb(file, 330)

    return urls


def mark_document(page) -> None:
    """A flag that a full page load would wipe out."""
    page.evaluate("window.__sameDocument = true")


def same_document(page) -> bool:
    return page.evaluate("window.__sameDocument === true")


def test_label_a_candidate_good_it_is_marked_without_a_reload_and_stored(
    browser, live_server, curator, commons_server
):
    _, _, pois = make_pois(3, 3, image_every=0, flag_every=0, urls=commons_urls(commons_server))
    cand = Candidate.objects.filter(poi=pois[0]).order_by("search_rank").first()
    page = logged_in_page(browser, live_server.url, curator)
    page.goto("/image-ranking/")
    mark_document(page)

    page.locator("#tools summary").click()  # the drawer: its calibration panel comes on open
    expect(page.locator("#calibration")).to_contain_text("0 good · 0 bad")
    tile = page.locator(f"#t-c{cand.pk}")
    tile.hover()  # the action bar shows on the tile under the pointer
    tile.locator("button[data-key=good]").click()

    expect(tile).to_have_class(re.compile(r"\btile--good\b"))
    tile.hover()
    expect(tile.locator("button[data-key=good]")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("[data-count=labelled]")).to_have_text("1")
    expect(page.locator("#calibration")).to_contain_text("1 good · 0 bad")
    assert same_document(page)
    row = ImageTrainingData.objects.get()
    assert (row.poi_id, row.image_url, row.label) == (pois[0].pk, cand.image_url, "good")
    assert row.labelled_by == curator and row.aesthetic_score == cand.score

    # Reversible: clicking the pressed button again clears the label.
    tile.locator("button[data-key=good]").click()
    expect(tile).not_to_have_class(re.compile(r"\btile--good\b"))
    tile.hover()
    expect(tile.locator("button[data-key=good]")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("[data-count=labelled]")).to_have_text("0")
    assert not ImageTrainingData.objects.exists()


def test_without_javascript_the_same_forms_work_with_a_full_page_load(
    browser, live_server, curator, commons_server
):
    city, _, pois = make_pois(4, 3, image_every=0, flag_every=0, urls=commons_urls(commons_server))
    cand = Candidate.objects.filter(poi=pois[1]).order_by("search_rank").first()
    page = logged_in_page(browser, live_server.url, curator, javascript=False)
    page.goto(f"/image-ranking/?city={city.pk}&status=missing&per_page=10")

    # Without JavaScript the POI's name links to its focused review (the page's filters kept;
    # a photo's own link is short: 220 a page), whose actions are plain forms.
    with page.expect_navigation():
        page.locator(f"#poi-{pois[1].pk} .poi-name a").click()
    with page.expect_navigation():
        page.locator(f".filmstrip a[href*='img=c{cand.pk}']").click()
    with page.expect_navigation():
        page.locator("#focus-actions button[data-key=bad]").click()

    assert f"img=c{cand.pk}" in page.url
    expect(page.locator(".messages")).to_contain_text("Marked bad.")
    expect(page.locator("[data-focus-label=bad]")).to_be_visible()
    assert ImageTrainingData.objects.get().label == "bad"
    with page.expect_navigation():
        page.locator("[data-nav=grid]").click()  # back to the grid, the filters kept
    assert f"city={city.pk}" in page.url and "status=missing" in page.url
    expect(page.locator(f"#t-c{cand.pk}")).to_have_class(re.compile(r"\btile--bad\b"))


def test_keyboard_loop_labels_advances_undoes_and_shows_the_keys(
    browser, live_server, curator, commons_server
):
    _, _, pois = make_pois(2, 3, image_every=0, flag_every=0, urls=commons_urls(commons_server))
    first, second = Candidate.objects.filter(poi=pois[0]).order_by("-score")[:2]
    page = logged_in_page(browser, live_server.url, curator)
    page.goto("/image-ranking/")
    mark_document(page)

    page.keyboard.press("j")  # focus the first image
    expect(page.locator(f"#t-c{first.pk}")).to_be_focused()
    page.keyboard.press("g")
    expect(page.locator(f"#t-c{first.pk}")).to_have_class(re.compile("tile--good"))
    expect(page.locator(f"#t-c{second.pk}")).to_be_focused()  # auto-advance
    page.keyboard.press("b")
    expect(page.locator(f"#t-c{second.pk}")).to_have_class(re.compile("tile--bad"))
    assert dict(ImageTrainingData.objects.values_list("image_url", "label")) == {
        first.image_url: "good",
        second.image_url: "bad",
    }
    page.keyboard.press("u")  # undo the last label
    expect(page.locator(f"#t-c{second.pk}")).not_to_have_class(re.compile("tile--bad"))
    assert list(ImageTrainingData.objects.values_list("label", flat=True)) == ["good"]
    page.keyboard.press("k")
    page.keyboard.press("k")
    expect(page.locator(f"#t-c{first.pk}")).to_be_focused()
    page.keyboard.press("n")  # next POI: its first image
    expect(page.locator(f"#poi-{pois[1].pk} .tile:not(.tile--missing)").first).to_be_focused()

    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    expect(page.locator("#help")).to_contain_text("undo the last action")
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()
    assert same_document(page)


def test_use_this_image_replaces_the_current_image(
    browser, live_server, curator, commons_server, media_root
):
    _, _, pois = make_pois(1, 3, image_every=0, flag_every=0, urls=commons_urls(commons_server))
    poi = pois[0]
    cand = Candidate.objects.filter(poi=poi).order_by("search_rank").last()
    page = logged_in_page(browser, live_server.url, curator)
    page.goto("/image-ranking/")
    mark_document(page)
    card = page.locator(f"#poi-{poi.pk}")
    expect(card.locator(".tile--missing")).to_be_visible()

    card.locator(f"#t-c{cand.pk}").hover()
    card.locator(f"#t-c{cand.pk} button[data-key=use]").click()

    current = card.locator(".tile--current img")
    expect(current).to_be_visible()
    expect(current).to_have_attribute("src", re.compile(r"^/media/cities/images/pois/"))
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=current.element_handle()
    )
    assert current.evaluate("img => img.naturalWidth") <= 800  # the stored 800x600 result
    expect(card.locator(f"#t-c{cand.pk} .badge--winner")).to_be_visible()
    assert same_document(page)
    poi.refresh_from_db()
    assert poi.image_file and (media_root / poi.image_file.name).is_file()
    with Image.open(media_root / poi.image_file.name) as stored:
        assert stored.width <= 800 and stored.height <= 600
    assert PoiRanking.objects.get(poi=poi).status == PoiRanking.Status.UPDATED


# --- Rank missing: real Django-Q jobs ---------------------------------------------------------

LISBON_POIS = [
    # name, coordinates, what Commons has for it
    ("Torre de Belém", (38.6916, -9.2160), "photos"),
    ("Mosteiro dos Jerónimos", (38.6979, -9.2068), "photos"),
    ("Padrão dos Descobrimentos", (38.6936, -9.2058), "photos"),
    ("Elevador de Santa Justa", (38.7121, -9.1394), "far"),
    ("Miradouro da Graça", (38.7163, -9.1313), "none"),
]


def lisbon_with_commons(server) -> list[PointOfInterest]:
    """Five Lisbon POIs in a list without images, and Commons answers for each."""
    city = City.objects.create(name="Lisbon", latitude=38.7223, longitude=-9.1393)
    poi_list = PoiList.objects.create(title="Historic sights", city=city)
    pois = []
    for index, (name, (lat, lon), kind) in enumerate(LISBON_POIS):
        poi = PointOfInterest.objects.create(
            city=city, name=name, category="see", latitude=lat, longitude=lon
        )
        poi_list.pois.add(poi)
        pois.append(poi)
        base = upscaled(photo(PHOTO_NAMES[index % len(PHOTO_NAMES)]))
        here = (lat + 0.001, lon)
        if kind == "photos":
            files = [
                server.add_file(f"{name} dark.jpg", degrade(base, "dark"), coords=here),
                server.add_file(f"{name}.jpg", base, coords=here),
                server.add_file(f"{name} blur.jpg", degrade(base, "blur"), coords=here),
                server.add_file(f"{name} crop.jpg", degrade(base, "crop"), coords=here),
            ]
            server.set_results(name, files)
        elif kind == "far":  # taken in Porto: not eligible
            far = server.add_file(f"{name} (Porto).jpg", base, coords=(41.15, -8.61))
            server.set_results(name, [far])
    return pois


def test_rank_missing_runs_the_jobs_and_the_bar_reaches_the_end(
    file_live_server, commons_server, nima_scorer, monkeypatch, settings, tmp_path
):
    """Django-Q's own pusher, worker and monitor run the jobs (in threads, see ThreadCluster)
    against a WAL file database shared with the live server, as a deployment would."""
    settings.IMAGE_RANKING_FALLBACK = False
    # Not `django_user_model`: it requests `db`, whose transaction would hide these rows from
    # the server and worker threads.
    curator = get_user_model().objects.create_user("curator", password="pw", is_staff=True)
    cookie = session_cookie(curator)
    pois = lisbon_with_commons(commons_server)
    cluster = ThreadCluster().start()
    try:
        with chromium(monkeypatch) as browser:
            seen = watch_rank_missing(browser, file_live_server, cookie, pois, tmp_path)
    finally:
        cluster.stop()
    assert len(seen) >= 2, seen  # the bar moved while the jobs ran
    run = RankingRun.objects.get()
    tally = run.tally()
    assert (run.status, tally.processed, tally.updated, tally.total) == ("finished", 5, 3, 5)
    assert run.threshold == 3.0 and run.created_by == curator
    assert PointOfInterest.objects.exclude(image_file="").count() == 3
    assert ImageTrainingData.objects.filter(label="good").count() == 3
    assert ImageTrainingData.objects.filter(label="bad").count() == 9
    winners = Candidate.objects.filter(is_winner=True).values_list("image_url", flat=True)
    good = ImageTrainingData.objects.filter(label="good").values_list("image_url", flat=True)
    assert sorted(good) == sorted(winners)
    assert 4.0 < calibration.current_threshold() < 5.2  # adopted: between the bad and the good


def watch_rank_missing(browser, base_url, cookie, pois, tmp_path) -> set[str]:
    """Click "Rank missing", follow the bar to the end, check the page; return the counts
    the bar showed on the way."""
    page = logged_in_page(browser, base_url, cookie)
    page.goto("/image-ranking/")
    mark_document(page)
    expect(page.locator("[data-count=missing]")).to_have_text("5")

    page.locator("#tools summary").click()  # the drawer with the run's controls
    form = page.locator("form.run-form")
    form.locator("input[name=threshold]").fill("3")
    form.locator("[data-rank-missing]").click()

    progress = page.locator("#run-progress")
    expect(progress).to_have_attribute("data-status", re.compile("queued|running|finished"))
    seen = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen.add(progress.locator("[data-processed]").inner_text())
        if progress.get_attribute("data-status") == "finished":
            break
        page.wait_for_timeout(150)
    expect(progress).to_have_attribute("data-status", "finished")
    expect(progress.locator("[data-processed]")).to_have_text("5")
    expect(progress.locator(".bar > span")).to_have_attribute("style", "width: 100%")
    assert "hx-trigger" not in progress.evaluate("el => el.outerHTML")  # polling stopped

    # The list refreshed itself: the new images are on the page, without a reload.
    for poi in pois[:3]:
        selector = f"#poi-{poi.pk} .tile--current img"
        expect(page.locator(selector)).to_be_visible()
        # Lazy: it loads only near the viewport, as for a curator. Looked up again on every
        # check: the run's last poll may still swap the card in.
        page.wait_for_function(
            """sel => {
                const img = document.querySelector(sel);
                if (!img) return false;
                img.scrollIntoView({block: "center"});
                return img.complete && img.naturalWidth > 0;
            }""",
            arg=selector,
        )
    expect(page.locator(f"#poi-{pois[3].pk} .note--ineligible")).to_be_visible()
    expect(page.locator(f"#poi-{pois[4].pk} .flag-reason")).to_be_visible()
    expect(page.locator("[data-count=missing]")).to_have_text("2")
    assert same_document(page)

    # A curator's pass from the keyboard: each winner good, its degraded copies bad; the
    # calibration panel follows and suggests a threshold, which is adopted with one click.
    for poi in pois[:3]:
        tiles = page.locator(f"#poi-{poi.pk} .tiles .tile:not(.tile--current)")
        for index in range(tiles.count()):
            tile = tiles.nth(index)
            tile.focus()
            page.keyboard.press("g" if "tile--winner" in tile.get_attribute("class") else "b")
    expect(page.locator("[data-count=labelled]")).to_have_text("12")
    expect(page.locator("#undo-button .pill")).to_have_text("12")  # no undo step lost
    calibration = page.locator("#calibration")
    expect(calibration).to_contain_text("3 good · 9 bad")  # the panel is live
    adopt = calibration.get_by_role("button", name=re.compile(r"^Adopt \d"))
    suggested = adopt.inner_text().split()[1]
    adopt.click()
    expect(calibration).to_contain_text(f"next runs {suggested}")
    expect(page.locator("#current-threshold")).to_contain_text(f"threshold {suggested}")
    expect(page.locator("#toast")).not_to_have_class(re.compile("toast--show"), timeout=6000)
    page.wait_for_timeout(300)  # the status line's fade
    page.locator("#tools summary").click()  # the drawer closed again: photos first
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screenshot_path(tmp_path, "dashboard.png")), full_page=True)
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    page.screenshot(path=str(screenshot_path(tmp_path, "dashboard-keys.png")))
    return seen


def test_live_cards_follow_the_run_and_cancel_ends_it(browser, live_server, curator):
    """While a batch run goes on, a card changes as soon as its POI's item is recorded (the
    panel's poll swaps it in); Cancel ends the run, and the queued card is queued no more."""
    from django.utils import timezone

    from image_ranking.models import RankingRunItem
    from tests.dashboard.factories import make_run

    _, _, pois = make_pois(3, 2, image_every=0, flag_every=0)
    done, waiting = pois[0], pois[1]
    run = make_run([done, waiting], ["pending", "pending"])
    page = logged_in_page(browser, live_server.url, curator)
    page.goto("/image-ranking/")
    mark_document(page)
    for poi in (done, waiting):
        expect(page.locator(f"#poi-{poi.pk} [data-live=pending]")).to_have_text("Queued")
    expect(page.locator(f"#poi-{pois[2].pk} [data-live]")).to_have_count(0)

    # The pipeline records the first POI (the in-memory database is shared with the server).
    RankingRunItem.objects.filter(run=run, poi=done).update(
        outcome="flagged", finished_at=timezone.now()
    )
    PoiRanking.objects.filter(poi=done).update(status="flagged", reason="nothing good enough")
    card = page.locator(f"#poi-{done.pk}")
    expect(card.locator("[data-status-chip]")).to_have_text("Flagged", timeout=8000)
    expect(card.locator("[data-live]")).to_have_count(0)
    expect(page.locator("#run-progress [data-processed]")).to_have_text("1")
    expect(page.locator(f"#poi-{waiting.pk} [data-live=pending]")).to_be_visible()

    page.locator("#run-progress [data-cancel-run]").click()
    progress = page.locator("#run-progress")
    expect(progress).to_have_attribute("data-status", "cancelled")
    expect(progress.locator("[data-tally=cancelled]")).to_have_text("1 cancelled")
    expect(progress.locator("[data-cancel-run]")).to_have_count(0)
    expect(page.locator(f"#poi-{waiting.pk} [data-live]")).to_have_count(0)  # list refreshed
    assert same_document(page)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert RankingRunItem.objects.get(run=run, poi=waiting).outcome == "cancelled"


def test_bootstrap_labels_look_automatic_and_keys_confirm_or_clear_them(
    browser, live_server, curator, commons_server
):
    _, _, pois = make_pois(
        1, 3, image_every=1, flag_every=0, origin="", urls=commons_urls(commons_server)
    )
    first, second = Candidate.objects.filter(poi=pois[0]).order_by("search_rank")[:2]
    page = logged_in_page(browser, live_server.url, curator)
    page.goto("/image-ranking/")
    mark_document(page)
    page.locator("#tools summary").click()
    page.locator("#calibration button", has_text="Bootstrap labels").click()
    expect(page.locator("#toast")).to_contain_text("Bootstrap: 1 good and 2 bad")
    for cand in (first, second):  # the list reloaded itself with the new labels
        expect(page.locator(f"#t-c{cand.pk} [data-label-source=bootstrap]")).to_have_text(
            "auto ✗ bad"
        )
    page.locator(f"#t-c{first.pk}").focus()
    page.keyboard.press("b")  # confirm: now the curator's own
    expect(page.locator(f"#t-c{first.pk} [data-label-source=curator]")).to_be_visible()
    page.locator(f"#t-c{second.pk}").focus()
    page.keyboard.press("c")  # clear the automatic label
    expect(page.locator(f"#t-c{second.pk} .label-mark")).to_have_count(0)
    assert same_document(page)
    rows = dict(ImageTrainingData.objects.values_list("image_url", "source"))
    assert rows[first.image_url] == "curator" and second.image_url not in rows


def test_one_undo_takes_back_a_whole_only_this_and_focuses_its_good_image(
    browser, live_server, curator, commons_server
):
    _, _, pois = make_pois(2, 4, image_every=0, flag_every=0, urls=commons_urls(commons_server))
    first, second, third, fourth = Candidate.objects.filter(poi=pois[0]).order_by("search_rank")
    elsewhere = Candidate.objects.filter(poi=pois[1]).order_by("search_rank").first()
    # Before: a bootstrap (auto) label, a curator's own label, and two unlabelled candidates.
    ImageTrainingData.objects.create(
        poi=pois[0], image_url=first.image_url, label="bad", source="bootstrap", model_name="nima"
    )
    ImageTrainingData.objects.create(
        poi=pois[0], image_url=second.image_url, label="good", source="curator", labelled_by=curator
    )
    fields = ("image_url", "label", "source", "aesthetic_score", "labelled_by_id", "model_name")
    before = set(ImageTrainingData.objects.values_list(*fields))
    page = logged_in_page(browser, live_server.url, curator)
    page.goto("/image-ranking/")
    mark_document(page)

    tile = {c.pk: page.locator(f"#t-c{c.pk}") for c in (first, second, third, fourth)}
    tile[third.pk].focus()
    page.keyboard.press("Shift+G")
    expect(tile[third.pk]).to_have_attribute("data-label", "good")
    for other in (first, second, fourth):
        expect(tile[other.pk]).to_have_attribute("data-label", "bad")
    expect(tile[first.pk].locator("[data-label-source=curator]")).to_be_visible()  # confirmed
    expect(page.locator("#undo-button .pill")).to_have_text("1")  # one action
    page.locator(f"#t-c{elsewhere.pk}").focus()  # the curator moved on

    page.keyboard.press("u")  # once

    expect(page.locator("#toast")).to_contain_text("Undone: 1 good and 3 bad labels taken back.")
    expect(tile[first.pk].locator("[data-label-source=bootstrap]")).to_have_text("auto ✗ bad")
    expect(tile[second.pk]).to_have_attribute("data-label", "good")
    expect(tile[second.pk].locator("[data-label-source=curator]")).to_be_visible()
    for unlabelled in (third, fourth):
        expect(page.locator(f"#t-c{unlabelled.pk}[data-label]")).to_have_count(0)
    expect(tile[third.pk]).to_be_focused()  # the image the action had marked good
    expect(page.locator("#undo-button")).to_be_disabled()  # nothing more: it was one step
    assert same_document(page)
    assert set(ImageTrainingData.objects.values_list(*fields)) == before
