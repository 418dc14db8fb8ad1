"""Issue 18 on the server: stale and refused actions refresh their card (DEBUG on or off),
the focused review and its moves over the view, selection with one undo, the coverage
report's numbers, and a page light enough for 20 POIs."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from image_ranking.models import Candidate, ImageTrainingData
from image_ranking.review import counts, ordering, selectors, undo
from image_ranking.review.answers import STALE
from tests.dashboard.factories import make_pois

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
DASH = reverse("image_ranking:dashboard")
FOCUS = reverse("image_ranking:focus")


# --- A stale or refused action: the card as it is now, never a page swap ----------------------


@pytest.mark.parametrize("debug", [True, False])
def test_a_click_on_a_replaced_tile_answers_with_the_card_and_a_message(
    staff_client, settings, debug
):
    settings.DEBUG = debug
    _, _, (poi,) = make_pois(1, 3, image_every=0, flag_every=0)
    gone = Candidate.objects.filter(poi=poi).first()
    url = reverse("image_ranking:label_candidate", args=[gone.pk])
    Candidate.objects.filter(poi=poi).delete()  # a re-rank replaced the candidates
    Candidate.objects.create(
        poi=poi, search_rank=1, title="File:New.jpg", image_url="https://upload.wikimedia.org/n.jpg"
    )
    response = staff_client.post(url, {"label": "good", "poi": poi.pk}, **HTMX)
    assert response.status_code == 409  # swapped like a 200 (the page's htmx-config)
    assert response["HX-Retarget"] == f"#poi-{poi.pk}" and response["HX-Reswap"] == "outerHTML"
    body = response.content.decode()
    assert f'id="poi-{poi.pk}"' in body and "File:New.jpg" in body  # the card as it is now
    assert STALE.replace("'", "&#x27;") in body or STALE.replace("'", "&#39;") in body
    assert not ImageTrainingData.objects.exists()
    # Without htmx: back to the page with the message, not a 404 page.
    plain = staff_client.post(url, {"label": "good", "poi": poi.pk})
    assert plain.status_code == 302


@pytest.mark.parametrize("debug", [True, False])
def test_the_page_loads_htmx_without_the_debug_handler_that_swaps_the_page(
    staff_client, settings, debug
):
    settings.DEBUG = debug
    make_pois(1, 1)
    page = staff_client.get(DASH).content.decode()
    assert "django-htmx.js" not in page  # its DEBUG handler replaced the page on a 404
    assert "django_htmx/htmx-2.min.js" in page
    config = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'', page).group(1)
    assert '{"code": "409", "swap": true, "error": false}' in config


def test_a_refusal_without_a_card_swaps_nothing_and_says_why(staff_client):
    response = staff_client.post(reverse("image_ranking:undo"), **HTMX)
    assert response.status_code == 409 and response["HX-Reswap"] == "none"
    assert "showToast" in response["HX-Trigger"] and "Nothing to undo" in response["HX-Trigger"]


def test_a_bad_candidate_id_without_its_poi_is_a_404_that_swaps_nothing(staff_client, settings):
    settings.DEBUG = True
    response = staff_client.post(
        reverse("image_ranking:label_candidate", args=[987654]), {"label": "good"}, **HTMX
    )
    assert response.status_code == 404 and response["Content-Type"].startswith("text/plain")
    assert response["HX-Reswap"] == "none"


# --- The focused review ------------------------------------------------------------------------


def focus(client, **params):
    response = client.get(FOCUS, params)
    assert response.status_code == 200, response.content[:300]
    return response


def test_the_focused_review_is_a_deep_link_to_a_poi_and_a_candidate(staff_client):
    _, _, pois = make_pois(2, 3, image_every=2, flag_every=0)
    second = Candidate.objects.filter(poi=pois[0]).order_by("search_rank")[1]
    response = focus(staff_client, poi=pois[0].pk, img=f"c{second.pk}")
    page = response.content.decode()
    assert response.context["image_key"] == f"c{second.pk}"
    assert pois[0].name in page and "Candidate 2 of 3" in page
    assert f'src="{pois[0].image_file.url}' in page  # the current image beside it
    assert "Score" in page and "Search rank" in page  # its facts


@pytest.mark.parametrize("sort", ["", "score", "status", "ranked"])
def test_next_and_previous_poi_walk_the_view_in_the_grids_order(staff_client, sort):
    make_pois(9, 1, image_every=3, flag_every=2)
    make_pois(4, 0, city_name="Aveiro", image_every=0, flag_every=0)  # no candidates, unranked
    filters = selectors.Filters(sort=sort, per_page=50)
    _, cards = selectors.page_of_cards(filters, 4.5)
    grid = [card.poi.pk for card in cards]
    walked = [grid[0]]
    while True:
        pk = ordering.neighbour(selectors.matching(filters), sort, walked[-1])
        if pk is None:
            break
        walked.append(pk)
    assert walked == grid
    back = [grid[-1]]
    while pk := ordering.neighbour(selectors.matching(filters), sort, back[-1], forward=False):
        back.append(pk)
    assert back == grid[::-1]


def test_n_reaches_a_flagged_poi_without_candidates_and_f_goes_to_the_next_flagged(staff_client):
    _, _, pois = make_pois(6, 2, image_every=0, flag_every=3)
    Candidate.objects.filter(poi=pois[3]).delete()  # flagged, no candidates, no fallback
    context = focus(staff_client, poi=pois[2].pk).context
    assert context["nav"]["next_poi"].startswith(f"{FOCUS}?poi={pois[3].pk}")
    assert context["nav"]["next_flagged"].startswith(f"{FOCUS}?poi={pois[3].pk}")
    tileless = focus(staff_client, poi=pois[3].pk)
    assert "No candidates" in tileless.content.decode() and tileless.context["tile"] is None
    # j past the last candidate goes on to the next POI, tile-less or not
    last = Candidate.objects.filter(poi=pois[2]).order_by("search_rank").last()
    assert (
        focus(staff_client, poi=pois[2].pk, img=f"c{last.pk}")
        .context["nav"]["next_image"]
        .startswith(f"{FOCUS}?poi={pois[3].pk}")
    )


def test_a_key_label_in_the_focused_review_saves_and_moves_on(staff_client):
    _, _, (poi,) = make_pois(1, 3, image_every=0, flag_every=0)
    first, second, _ = Candidate.objects.filter(poi=poi).order_by("search_rank")
    response = staff_client.post(
        reverse("image_ranking:label_candidate", args=[first.pk]),
        {"label": "good", "view": "focus", "poi": poi.pk, "img": f"c{first.pk}", "advance": "1"},
        **HTMX,
    )
    assert response.status_code == 200 and response["HX-Retarget"] == "#focus"
    assert f"img=c{second.pk}" in response["HX-Push-Url"]
    assert f'data-image="c{second.pk}"' in response.content.decode()
    assert ImageTrainingData.objects.get().label == "good"


# --- Selection across POIs ----------------------------------------------------------------------


def test_a_label_given_to_a_selection_across_pois_is_one_undo(staff_client):
    _, _, pois = make_pois(3, 2, image_every=0, flag_every=0)
    chosen = [Candidate.objects.filter(poi=p).first() for p in pois]
    response = staff_client.post(
        reverse("image_ranking:selection"),
        {"action": "bad", "sel": [f"c{c.pk}" for c in chosen]},
        **HTMX,
    )
    assert response.status_code == 200 and response["HX-Reswap"] == "none"
    body = response.content.decode()
    assert all(f'id="poi-{p.pk}"' in body for p in pois)  # every changed card, out of band
    assert "3 images of 3 POIs marked bad" in body
    assert ImageTrainingData.objects.filter(label="bad").count() == 3
    assert undo.undo_depth(staff_client.session) == 1
    undone = staff_client.post(reverse("image_ranking:undo"), **HTMX)
    assert undone.status_code == 200 and not ImageTrainingData.objects.exists()
    assert "3 bad labels taken back" in undone.content.decode()


def test_a_selection_leaves_out_images_a_rerank_replaced(staff_client):
    _, _, (poi,) = make_pois(1, 2, image_every=0, flag_every=0)
    keep = Candidate.objects.filter(poi=poi).first()
    response = staff_client.post(
        reverse("image_ranking:selection"),
        {"action": "good", "sel": [f"c{keep.pk}", "c987654"]},
        **HTMX,
    )
    assert "1 selected image had gone" in response.content.decode()
    assert ImageTrainingData.objects.count() == 1


# --- The coverage report and the page's weight ---------------------------------------------------


def test_the_reports_numbers_are_the_dashboards_counts(staff_client):
    city, _, _ = make_pois(12, 3, image_every=3, flag_every=2)
    report = staff_client.get(reverse("image_ranking:report"), {"city": city.pk})
    assert report.status_code == 200
    header = counts.counts(city.pk)
    by_label = {bar.label: bar.value for _, _, bars in report.context["charts"] for bar in bars}
    real = sum(
        by_label[name]
        for name in (
            "Curated (there before ranking)",
            "Found by the pipeline",
            "Chosen by a curator",
        )
    )
    assert real == header["has_image"]
    assert by_label["Category fallback (still needs a photo)"] == header["fallback"]
    assert by_label["No image"] + header["fallback"] == header["missing"]
    assert report.context["total"] == header["in_lists"]
    assert by_label["Below threshold"] == header["flagged"]
    page = report.content.decode()
    assert "<svg" in page and "<table" in page and "<script" not in page


def test_a_page_of_20_pois_with_10_candidates_each_weighs_under_150_kb(staff_client):
    make_pois(20, 10, image_every=3, flag_every=5, bulk=True)
    page = staff_client.get(DASH).content
    assert len(page) < 150 * 1024, len(page)
    assert page.count(b'class="tile') >= 200


def test_the_export_of_a_filtered_view_has_exactly_the_views_images(staff_client):
    import csv
    import io
    import json

    make_pois(9, 3, image_every=3, flag_every=2)
    flagged = selectors.matching(selectors.Filters(status="flagged"))
    expected = set(Candidate.objects.filter(poi__in=flagged).values_list("pk", flat=True))
    assert expected and len(expected) < Candidate.objects.count()
    url = reverse("image_ranking:export_view_csv")
    body = b"".join(staff_client.get(url, {"status": "flagged"}).streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert {int(r["candidate_id"]) for r in rows} == expected and len(rows) == len(expected)
    assert all(r["model_score"] and r["status"] == "flagged" for r in rows)
    lines = (
        b"".join(
            staff_client.get(
                reverse("image_ranking:export_view_jsonl"), {"status": "flagged"}
            ).streaming_content
        )
        .decode()
        .splitlines()
    )
    assert {json.loads(line)["candidate_id"] for line in lines} == expected
    assert all("ranked_score" in json.loads(line) for line in lines)


# --- Small defects of issue 18 ------------------------------------------------------------------


def test_the_login_page_is_the_projects_and_no_page_asks_for_favicon_ico(client, db):
    from django.contrib.staticfiles import finders

    response = client.get("/image-ranking/")  # a visitor is sent to the dashboard's login
    assert (
        response.status_code == 302 and response.url == "/image-ranking/login/?next=/image-ranking/"
    )
    page = client.get(response.url).content.decode()
    assert "City Wiki" in page and "review the photos" in page  # branded, says what it is for
    assert 'name="next" value="/image-ranking/"' in page
    icon = re.search(r'<link rel="icon" href="([^"]+)"', page)
    assert icon and icon.group(1).endswith("favicon.svg")  # so the browser asks for no .ico
    assert finders.find("favicon.svg")


def test_the_header_and_the_run_panel_do_not_call_two_things_ranked(staff_client):
    from tests.dashboard.factories import make_run

    _, _, pois = make_pois(4, 2, image_every=2, flag_every=0)
    make_run(pois, ["updated", "ranked", "pending", "pending"])
    page = staff_client.get(DASH).content.decode()
    assert "<dt>scored</dt>" in page and ">Ranked<" not in page  # ranked at least once
    panel = page[page.index('id="run-progress"') :]
    assert "1 new image" in panel and "1 image kept" in panel  # this run's outcomes
