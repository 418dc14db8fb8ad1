"""The dashboard's endpoints: staff only, CSRF on every POST, GET changes nothing, bad input
is a 4xx that changes nothing, and every action works with htmx (a fragment) and without it
(a redirect back to the same filtered page)."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse
from django_q.models import OrmQ

from cities.models import PointOfInterest
from image_ranking import urls as image_ranking_urls
from image_ranking.models import (
    AdoptedThreshold,
    Candidate,
    ImageTrainingData,
    PoiRanking,
    RankingRun,
    RankingRunItem,
)
from image_ranking.review import calibration
from tests.dashboard.factories import make_pois, make_run, make_usable_candidate

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
DASH = reverse("image_ranking:dashboard")


def snapshot() -> tuple:
    """Everything an action could change."""
    return (
        list(ImageTrainingData.objects.values_list("poi_id", "image_url", "label", "source")),
        list(RankingRun.objects.values_list("pk", "status", "active_key")),
        list(RankingRunItem.objects.values_list("pk", "outcome")),
        list(AdoptedThreshold.objects.values_list("pk", "threshold")),
        list(PointOfInterest.objects.values_list("pk", "image_file")),
        list(Candidate.objects.values_list("pk", "is_winner")),
        list(PoiRanking.objects.values_list("pk", "status", "image_origin")),
        OrmQ.objects.count(),
    )


@pytest.fixture
def active_run(pois):
    """A batch run going on over the POIs without an image."""
    _, _, poi_objs = pois
    return make_run([p for p in poi_objs if not p.image_file], ["pending"] * 4, status="running")


# Every route of the dashboard, from its urlpatterns: a route added later is checked too.
PUBLIC = {"login"}  # the one route anyone may open


def routes(pois, run: RankingRun) -> list[tuple[str, str, dict, dict]]:
    """(name, URL, GET parameters, POST data) of every route: the path's ids are real rows;
    the parameters and data make each action one that would change something."""
    _, _, poi_objs = pois
    poi = poi_objs[0]
    cand = Candidate.objects.filter(poi=poi).first()
    ids = {"poi_id": poi.pk, "candidate_id": cand.pk, "run_id": run.pk}
    get = {
        "run_progress": {"pois": f"{poi.pk},{poi_objs[1].pk}", "shown": f"{poi_objs[1].pk}q"},
        "focus": {"poi": poi.pk},
    }
    post = {
        "label_candidate": {"label": "good"},
        "label_current": {"label": "good"},
        "fallback": {},
        "start_run": {"scope": "missing"},
        "adopt_threshold": {"threshold": "5.0"},
        "selection": {"action": "good", "sel": [f"c{cand.pk}"]},
        "search_query": {"query": "Belem tower"},
    }
    found = []
    for pattern in image_ranking_urls.urlpatterns:
        kwargs = {name: ids[name] for name in pattern.pattern.converters}
        if pattern.name == "fallback":
            kwargs["poi_id"] = poi_objs[1].pk  # one without an image
        url = reverse(f"image_ranking:{pattern.name}", kwargs=kwargs)
        found.append((pattern.name, url, get.get(pattern.name, {}), post.get(pattern.name, {})))
    assert len(found) >= 25 and {name for name, *_ in found} >= PUBLIC
    return found


# --- Access ---------------------------------------------------------------------------------


def test_every_route_but_the_login_is_staff_only(client, plain_client, pois, active_run):
    """Anonymous and non-staff visitors are sent to the dashboard's login page, whatever the
    method, and nothing changes."""
    before = snapshot()
    for who in (client, plain_client):
        for name, url, params, data in routes(pois, active_run):
            if name in PUBLIC:
                assert who.get(url).status_code == 200, name
                continue
            for response in (who.get(url, params), who.post(url, data)):
                assert response.status_code == 302, name
                assert response["Location"].startswith(reverse("image_ranking:login")), name
                assert b"sight" not in response.content
    assert snapshot() == before


def test_every_post_needs_the_csrf_token(csrf_client, pois, active_run):
    """Every route, the login page's too: a POST without the token is refused (403)."""
    before = snapshot()
    for name, url, _, data in routes(pois, active_run):
        assert csrf_client.post(url, data, **HTMX).status_code == 403, name
    assert snapshot() == before


def test_csrf_token_from_the_page_lets_the_post_through(csrf_client, pois):
    page = csrf_client.get(DASH)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page.content.decode()).group(1)  # hx-headers
    cand = Candidate.objects.filter(eligible=True).first()
    url = reverse("image_ranking:label_candidate", args=[cand.pk])
    response = csrf_client.post(url, {"label": "bad"}, HTTP_X_CSRFTOKEN=str(token), **HTMX)
    assert response.status_code == 200
    assert ImageTrainingData.objects.get().label == "bad"


def test_get_never_changes_anything_and_post_endpoints_refuse_get(staff_client, pois, active_run):
    """Every route answers GET with its page (200) or, an action, 405 naming POST."""
    before = snapshot()
    pages = 0
    for name, url, params, _ in routes(pois, active_run):
        response = staff_client.get(url, params)
        if response.status_code == 405:
            assert response["Allow"] == "POST", name
            continue
        assert response.status_code == 200, name
        b"".join(response.streaming_content) if response.streaming else response.content
        pages += 1
    assert pages >= 10
    assert snapshot() == before


# --- Bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "city=abc",
        "city=99999",
        "list=-1",
        "list=99999",
        "status=everything",
        "page=0",
        "page=x",
        "per_page=7",
    ],
)
def test_dashboard_bad_parameters_are_400(staff_client, pois, query):
    response = staff_client.get(f"{DASH}?{query}")
    assert response.status_code == 400


def test_bad_ids_are_404_and_change_nothing(staff_client, pois):
    before = snapshot()
    for name in ["label_candidate", "use_candidate"]:
        url = reverse(f"image_ranking:{name}", args=[999999])
        assert staff_client.post(url, {"label": "good"}, **HTMX).status_code == 404
    for name in ["label_current", "rerank", "fallback", "cancel_run"]:
        url = reverse(f"image_ranking:{name}", args=[999999])
        assert staff_client.post(url, {"label": "good"}, **HTMX).status_code == 404
    assert staff_client.get(reverse("image_ranking:poi_card", args=[999999])).status_code == 404
    assert staff_client.get(reverse("image_ranking:run_progress", args=[999999])).status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("label_candidate", {"label": "maybe"}),
        ("label_candidate", {}),
        ("start_run", {"scope": "everything"}),
        ("start_run", {"scope": "missing", "threshold": "11"}),
        ("start_run", {"scope": "missing", "threshold": "nan"}),
        ("start_run", {"scope": "missing", "city": "abc"}),
        ("start_run", {"scope": "missing", "city": "99999"}),
        ("adopt_threshold", {"threshold": "-1"}),
        ("adopt_threshold", {"threshold": "ten"}),
        ("bootstrap", {"city": "99999"}),
        ("start_run", {"scope": "missing", "pois": "1,x"}),
        ("start_run", {"scope": "missing", "pois": "-3"}),
        ("adopt_threshold", {"threshold": "5", "model": "clip"}),
    ],
)
def test_bad_post_parameters_are_400_and_change_nothing(staff_client, pois, name, data):
    args = [Candidate.objects.first().pk] if name == "label_candidate" else []
    before = snapshot()
    response = staff_client.post(reverse(f"image_ranking:{name}", args=args), data, **HTMX)
    assert response.status_code == 400
    assert snapshot() == before


# --- The page -------------------------------------------------------------------------------


def test_dashboard_shows_counts_cards_and_states(staff_client, pois):
    response = staff_client.get(DASH)
    assert response.status_code == 200
    html = response.content.decode()
    counts = response.context["counts"]
    assert counts == {
        "in_lists": 6, "missing": 4, "fallback": 0, "flagged": 1, "ranked": 6, "has_image": 2,
        "labelled": 0,
    }  # fmt: skip
    assert "Lisbon sight 00000" in html and "Lisbon sight 00005" in html
    assert "Missing" in html  # a POI without an image says so
    assert "below the threshold" in html  # the flagged POI's reason
    assert "Not eligible: 12.5 km from the POI" in html
    assert "Winner" in html
    assert "django_htmx/htmx-2.min.js" in html  # htmx from our static files, no CDN
    assert "{#" not in html and "#}" not in html  # template comments stay comments
    # Candidates best first.
    card = response.context["cards"][0]
    scores = [t.candidate.score for t in card.candidates if t.candidate.eligible]
    assert scores == sorted(scores, reverse=True)


def test_filters_select_pois_and_stay_in_the_url(staff_client, pois):
    city, _, _ = pois
    make_pois(2, 1, city_name="Rome", list_title="Rome top")
    response = staff_client.get(f"{DASH}?city={city.pk}&status=missing&per_page=10")
    names = [c.poi.name for c in response.context["cards"]]
    assert names == [f"Lisbon sight {i:05d}" for i in (1, 2, 4, 5)]
    html = response.content.decode()
    assert f'name="return_to" value="city={city.pk}&amp;status=missing&amp;per_page=10"' in html
    flagged = staff_client.get(f"{DASH}?status=flagged").context["cards"]
    assert [c.poi.name for c in flagged] == ["Lisbon sight 00005"]
    with_image = staff_client.get(f"{DASH}?status=has_image&city={city.pk}").context["cards"]
    assert [c.poi.name for c in with_image] == ["Lisbon sight 00000", "Lisbon sight 00003"]


def test_pagination_keeps_the_filters(staff_client, db):
    make_pois(25, 1)
    response = staff_client.get(f"{DASH}?status=missing&per_page=10")
    assert response.context["page"].num_pages == 2
    assert response.context["next_url"] == f"{DASH}?status=missing&per_page=10&page=2"
    page2 = staff_client.get(response.context["next_url"])
    assert len(page2.context["cards"]) == 16 - 10
    assert page2.context["prev_url"] == f"{DASH}?status=missing&per_page=10"


def test_page_costs_the_same_queries_whatever_its_size(staff_client, db, django_assert_num_queries):
    make_pois(60, 10)
    ImageTrainingData.objects.create(
        poi=PointOfInterest.objects.first(), image_url="x", label="good", aesthetic_score=6
    )
    pois = list(PointOfInterest.objects.order_by("pk")[:10])
    make_run(pois, ["updated"] * 3 + ["running"] + ["pending"] * 6, status="running")
    staff_client.get(DASH)  # warm the session
    # session + user, data stamp, label count (the state counts are kept until the stamp
    # changes), filter options (2), threshold, the page's ids, POIs, candidates, labels, lists,
    # live items, active batch run, its tally. The calibration panel comes when the drawer opens.
    expected = 15
    for per_page in (10, 20, 50):
        with django_assert_num_queries(expected):
            response = staff_client.get(f"{DASH}?per_page={per_page}")
        assert len(response.context["cards"]) == per_page


# --- Labels ---------------------------------------------------------------------------------


def label_url(cand: Candidate) -> str:
    return reverse("image_ranking:label_candidate", args=[cand.pk])


def test_label_with_htmx_returns_the_tile_marked_and_stores_it(staff_client, staff, pois):
    cand = Candidate.objects.filter(eligible=True).order_by("pk").first()
    response = staff_client.post(label_url(cand), {"label": "good"}, **HTMX)
    assert response.status_code == 200
    assert response["HX-Retarget"] == f"#t-c{cand.pk}"
    html = response.content.decode()
    assert f'id="t-c{cand.pk}"' in html and "tile--good" in html
    assert 'data-label="good"' in html and "✓ good" in html  # the action bar reads the label
    assert 'id="counts"' in html and 'hx-swap-oob="true"' in html  # counts updated in place
    row = ImageTrainingData.objects.get()
    assert (row.poi_id, row.image_url, row.label) == (cand.poi_id, cand.image_url, "good")
    assert row.aesthetic_score == cand.score and row.labelled_by == staff
    assert row.source == "curator" and row.thumbnail_url == cand.thumb_url

    staff_client.post(label_url(cand), {"label": "bad"}, **HTMX)
    assert list(ImageTrainingData.objects.values_list("label", flat=True)) == ["bad"]
    staff_client.post(label_url(cand), {"label": "clear"}, **HTMX)
    assert not ImageTrainingData.objects.exists()


def test_label_without_javascript_redirects_back_to_the_same_filtered_page(staff_client, pois):
    city, _, _ = pois
    cand = Candidate.objects.filter(eligible=True).order_by("pk").first()
    back = f"city={city.pk}&status=missing&page=2"
    response = staff_client.post(label_url(cand), {"label": "good", "return_to": back})
    assert response.status_code == 302
    assert response["Location"] == f"{DASH}?city={city.pk}&status=missing&page=2#poi-{cand.poi_id}"
    assert ImageTrainingData.objects.get().label == "good"
    page = staff_client.get(response["Location"])
    assert "Marked good." in page.content.decode()


def test_a_hostile_return_to_is_dropped(staff_client, pois):
    cand = Candidate.objects.first()
    response = staff_client.post(
        label_url(cand), {"label": "good", "return_to": "https://evil.example/&city=abc"}
    )
    assert response["Location"].startswith(f"{DASH}#poi-") or response["Location"].startswith(
        f"{DASH}?"
    )
    assert "evil" not in response["Location"]


def test_label_current_image_and_missing_image(staff_client, pois):
    _, _, poi_objs = pois
    with_image, without = poi_objs[0], poi_objs[1]
    url = reverse("image_ranking:label_current", args=[with_image.pk])
    response = staff_client.post(url, {"label": "good"}, **HTMX)
    assert response.status_code == 200 and "tile--good" in response.content.decode()
    row = ImageTrainingData.objects.get()
    assert row.image_url == with_image.image_file.url and row.label == "good"
    before = snapshot()
    url = reverse("image_ranking:label_current", args=[without.pk])
    response = staff_client.post(url, {"label": "good"}, **HTMX)
    assert response.status_code == 409 and b"no image" in response.content
    assert snapshot() == before


def test_undo_walks_back_label_by_label(staff_client, pois):
    cand = Candidate.objects.filter(eligible=True).order_by("pk").first()
    other = Candidate.objects.filter(eligible=True).order_by("pk")[1]
    staff_client.post(label_url(cand), {"label": "good"}, **HTMX)
    staff_client.post(label_url(cand), {"label": "bad"}, **HTMX)
    staff_client.post(label_url(other), {"label": "good"}, **HTMX)
    undo = reverse("image_ranking:undo")

    response = staff_client.post(undo, **HTMX)
    assert response.status_code == 200 and response["HX-Retarget"] == f"#t-c{other.pk}"
    assert not ImageTrainingData.objects.filter(image_url=other.image_url).exists()
    staff_client.post(undo, **HTMX)
    assert ImageTrainingData.objects.get(image_url=cand.image_url).label == "good"
    staff_client.post(undo, **HTMX)
    assert not ImageTrainingData.objects.exists()
    response = staff_client.post(undo, **HTMX)
    assert response.status_code == 409 and b"Nothing to undo" in response.content
    response = staff_client.post(undo)  # without JavaScript: back to the page with a message
    assert response.status_code == 302


def test_export_csv_and_jsonl(staff_client, staff, pois):
    cand = Candidate.objects.filter(eligible=True).order_by("pk").first()
    staff_client.post(label_url(cand), {"label": "good"}, **HTMX)
    ImageTrainingData.objects.create(
        poi=cand.poi, image_url="=HYPERLINK(1)", label="bad", aesthetic_score=3.5
    )
    response = staff_client.get(reverse("image_ranking:export_csv"))
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    lines = text.strip().splitlines()
    assert lines[0].startswith("poi_id,poi_name,city,image_url")
    assert len(lines) == 3 and cand.image_url in text and "curator" in text
    assert "'=HYPERLINK(1)" in text  # no formula injection into spreadsheets
    response = staff_client.get(reverse("image_ranking:export_jsonl"))
    rows = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert [r["label"] for r in rows] == ["good", "bad"]
    assert rows[0]["aesthetic_score"] == cand.score and rows[0]["labelled_by"] == "curator"
    assert rows[0]["model_name"] == "nima" and "model_name" in lines[0]


# --- Calibration ----------------------------------------------------------------------------


def test_best_threshold_separates_good_from_bad():
    bins = {"good": {55: 2, 60: 3, 72: 1}, "bad": {30: 2, 41: 3, 47: 1}}
    threshold, accuracy = calibration.best_threshold(bins)
    assert 4.8 <= threshold <= 5.5 and accuracy == 1.0
    assert calibration.balanced_accuracy(bins, 4.5) == pytest.approx((1 + 5 / 6) / 2)


def test_adopt_the_suggested_threshold(staff_client, staff, pois, settings):
    settings.IMAGE_RANKING_THRESHOLD = 4.5
    url = reverse("image_ranking:adopt_threshold")
    response = staff_client.post(url, **HTMX)
    assert response.status_code == 409 and b"need at least" in response.content
    assert calibration.current_threshold() == 4.5
    cands = list(Candidate.objects.filter(eligible=True).order_by("pk")[:8])
    for i, cand in enumerate(cands):
        ImageTrainingData.objects.create(
            poi=cand.poi, image_url=cand.image_url, label="good" if i % 2 else "bad",
            aesthetic_score=6.0 + i * 0.1 if i % 2 else 3.0 + i * 0.1,
        )  # fmt: skip
    cal = calibration.calibrate()
    assert cal.enough and cal.accuracy == 1.0 and 3.7 < cal.suggested <= 6.1
    response = staff_client.post(url, **HTMX)
    assert response.status_code == 200 and "adopted" in response.content.decode()
    assert calibration.current_threshold() == cal.suggested
    adopted = AdoptedThreshold.objects.get()
    assert adopted.adopted_by == staff and adopted.good_count == 4 and adopted.bad_count == 4
    staff_client.post(url, {"threshold": "5.25"})  # a curator's own value, without JS
    assert calibration.current_threshold() == 5.25
    page = staff_client.get(DASH)
    assert page.context["threshold"] == 5.25
    panel = staff_client.get(reverse("image_ranking:calibration"))  # when the drawer opens
    assert "<svg" in panel.content.decode() and "5.25" in panel.content.decode()


# --- Runs -----------------------------------------------------------------------------------


def test_rank_missing_enqueues_jobs_and_shows_a_polling_progress_bar(staff_client, pois):
    city, _, _ = pois
    AdoptedThreshold.objects.create(model_name=calibration.model_name(), threshold=5.1)
    response = staff_client.post(
        reverse("image_ranking:start_run"), {"scope": "missing", "city": city.pk}, **HTMX
    )
    assert response.status_code == 200
    run = RankingRun.objects.get()
    assert run.tally().total == 4 and run.threshold == 5.1 and run.city == city
    assert run.kind == "batch"
    assert OrmQ.objects.count() == 4  # one Django-Q task per POI
    html = response.content.decode()
    progress_url = reverse("image_ranking:run_progress", args=[run.pk])
    assert f'hx-get="{progress_url}' in html and 'hx-trigger="every 2s"' in html
    assert "ranked with threshold 5.10" in html  # the run's own threshold, named as such
    assert "0</b> / <span data-total>4</span>" in html
    # The same run again while this one is active (a double click) is refused...
    again = staff_client.post(
        reverse("image_ranking:start_run"), {"scope": "missing", "city": city.pk}, **HTMX
    )
    assert again.status_code == 409 and b"still going" in again.content
    assert RankingRun.objects.count() == 1 and OrmQ.objects.count() == 4
    # ... a different one may run alongside.
    other = staff_client.post(reverse("image_ranking:start_run"), {"scope": "all"}, **HTMX)
    assert other.status_code == 200 and RankingRun.objects.count() == 2


def test_progress_stops_polling_when_the_run_ends(staff_client, db, settings):
    settings.WIKIMEDIA_RATE_PER_HOUR = 500
    _, _, pois = make_pois(100, 1, image_every=0, flag_every=0, bulk=True)
    run = make_run(pois, ["updated"] * 37 + ["flagged"] * 3 + ["pending"] * 60)
    url = reverse("image_ranking:run_progress", args=[run.pk])
    html = staff_client.get(url, **HTMX).content.decode()
    assert 'hx-trigger="every 2s"' in html and "about 7 min left" in html  # 60 x 7.2 s
    assert "<b data-processed>40</b> / <span data-total>100</span>" in html
    assert "3 flagged" in html and "37 new image" in html
    RankingRunItem.objects.filter(run=run, outcome="pending").update(outcome="ranked")
    RankingRun.objects.filter(pk=run.pk).update(status="finished", active_key=None)
    response = staff_client.get(url, **HTMX)
    assert 'hx-trigger="load' not in response.content.decode()
    assert "rankingRunFinished" in response["HX-Trigger"]


def test_rerank_starts_a_run_for_that_poi_and_the_card_watches_it(staff_client, pois):
    _, _, poi_objs = pois
    poi = poi_objs[2]
    response = staff_client.post(reverse("image_ranking:rerank", args=[poi.pk]), **HTMX)
    run = RankingRun.objects.get()
    assert (run.tally().total, run.scope, run.kind) == (1, "all", "poi")
    assert OrmQ.objects.count() == 1
    html = response.content.decode()
    assert f"?run={run.pk}" in html and "Re-rank queued" in html
    # The run panel shows batch runs only: a one-POI re-rank leaves it alone.
    page = staff_client.get(DASH)
    assert page.context["run"] is None and "No ranking run yet" in page.content.decode()
    assert 'class="progress-panel is-empty"' in page.content.decode()  # no room taken
    assert f'data-watch-run="{run.pk}"' in page.content.decode()  # the card follows it
    # A second click while it goes on is refused, and nothing more is queued.
    before = snapshot()
    again = staff_client.post(reverse("image_ranking:rerank", args=[poi.pk]), **HTMX)
    assert again.status_code == 409 and f"already going (run {run.pk})" in again.text
    assert snapshot() == before


def test_category_fallback_for_a_poi_without_an_image(staff_client, pois, media_root):
    _, _, poi_objs = pois
    poi = poi_objs[1]
    response = staff_client.post(reverse("image_ranking:fallback", args=[poi.pk]), **HTMX)
    assert response.status_code == 200
    poi.refresh_from_db()
    assert poi.image_file and (media_root / poi.image_file.name).is_file()
    assert PoiRanking.objects.get(poi=poi).uses_fallback
    html = response.content.decode()
    assert '<span class="badge badge--current">Fallback</span>' in html
    assert "data-fallback-chip" in html
    assert "still needs a photo" in html


def test_use_this_image_stores_the_candidate(staff_client, db, commons_server, media_root):
    poi, cand = make_usable_candidate(commons_server)
    response = staff_client.post(reverse("image_ranking:use_candidate", args=[cand.pk]), **HTMX)
    assert response.status_code == 200
    poi.refresh_from_db()
    assert poi.image_file and (media_root / poi.image_file.name).is_file()
    assert Candidate.objects.get(pk=cand.pk).is_winner
    assert ImageTrainingData.objects.get(poi=poi).label == "good"  # choosing it = good
    # The card says it was the curator's pick, not a run's winner.
    tile = response.content.decode().split(f'id="t-c{cand.pk}"')[1].split("</figure>")[0]
    assert '<span class="badge badge--winner">Curator&#x27;s pick</span>' in tile
    focus = staff_client.get(reverse("image_ranking:focus"), {"poi": poi.pk, "img": f"c{cand.pk}"})
    assert "Chosen by a curator" in focus.content.decode()
    assert poi.image_file.url in response.content.decode()


def test_use_this_image_failure_keeps_the_poi_as_it_was(staff_client, pois, settings):
    settings.IMAGE_DOWNLOAD_ORIGINS = ["http://127.0.0.1:9"]  # the candidate's origin: refused
    cand = Candidate.objects.filter(poi__image_file="").first()
    before = snapshot()
    response = staff_client.post(reverse("image_ranking:use_candidate", args=[cand.pk]), **HTMX)
    assert response.status_code == 200 and "Could not use this image" in response.content.decode()
    assert snapshot() == before


def test_card_refresh_with_a_bad_run_id_is_400(staff_client, pois):
    _, _, poi_objs = pois
    url = reverse("image_ranking:poi_card", args=[poi_objs[0].pk])
    assert staff_client.get(f"{url}?run=abc").status_code == 400
    assert staff_client.get(f"{url}?run=42").status_code == 200  # a run gone: no polling
    assert 'hx-trigger="load' not in staff_client.get(f"{url}?run=42").content.decode()


def test_actions_without_javascript_redirect_back_with_a_message(staff_client, pois):
    city, _, poi_objs = pois
    back = f"city={city.pk}&status=missing"
    response = staff_client.post(
        reverse("image_ranking:start_run"), {"scope": "missing", "return_to": back}
    )
    assert response.status_code == 302 and response["Location"] == f"{DASH}?{back}"
    assert RankingRun.objects.get().tally().total == 4
    page = staff_client.get(response["Location"])
    assert "Run 1: 4 POIs queued." in page.content.decode()
    response = staff_client.post(
        reverse("image_ranking:fallback", args=[poi_objs[1].pk]), {"return_to": back}
    )
    assert response["Location"] == f"{DASH}?{back}#poi-{poi_objs[1].pk}"
    response = staff_client.post(reverse("image_ranking:bootstrap"), {"return_to": back})
    assert response.status_code == 302
    assert "Bootstrap:" in staff_client.get(response["Location"]).content.decode()


def test_a_candidate_link_is_never_a_script_url(staff_client, pois):
    cand = Candidate.objects.first()
    Candidate.objects.filter(pk=cand.pk).update(description_url="javascript:alert(1)")
    html = staff_client.get(DASH).content.decode()
    assert "javascript:" not in html


def test_admin_lists_the_image_ranking_models(admin_client, pois):
    ImageTrainingData.objects.create(poi=pois[2][0], image_url="u", label="good")
    make_run(pois[2][:2], ["pending", "updated"])
    calibration.adopt_threshold(5.0)
    for model in ["imagetrainingdata", "rankingrun", "poiranking", "candidate", "adoptedthreshold"]:
        url = reverse(f"admin:image_ranking_{model}_changelist")
        assert admin_client.get(url).status_code == 200, model
    url = reverse("admin:image_ranking_imagetrainingdata_changelist")
    assert admin_client.get(url, {"label": "good", "source__exact": "curator"}).status_code == 200


def test_a_replaced_current_image_is_shown_fresh_not_from_the_browser_cache(staff_client, pois):
    from datetime import timedelta

    from django.utils import timezone

    _, _, poi_objs = pois
    poi = poi_objs[0]
    card_url = reverse("image_ranking:poi_card", args=[poi.pk])
    before = staff_client.get(card_url, **HTMX).content.decode()
    # A new file stored at the same path (what "use this image" does) bumps updated_at.
    PointOfInterest.objects.filter(pk=poi.pk).update(
        updated_at=timezone.now() + timedelta(seconds=5)
    )
    after = staff_client.get(card_url, **HTMX).content.decode()
    src = f'src="{poi.image_file.url}?v='
    assert src in before and src in after
    assert before.split(src)[1].split('"')[0] != after.split(src)[1].split('"')[0]
