"""The grid's filters with counts (issue 18): flag reason, best score, label, damage and image
origin. Every option's count is the size of its filter in the city/list scope, and the POIs it
keeps are those a plain reading of the data says (an oracle in Python, not the app's query);
filters combine with each other, the search and the sort, stay in the URL, and the focused
review's moves and the export of the view follow them. The counts cost no query once kept."""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cities.models import PointOfInterest
from image_ranking.models import Candidate, ImageTrainingData, PoiRanking
from image_ranking.pipeline import flags
from tests.dashboard.factories import make_pois

pytestmark = pytest.mark.django_db

DASH = reverse("image_ranking:dashboard")
FOCUS = reverse("image_ranking:focus")
Origin = PoiRanking.Origin
GROUPS = ("status", "flag", "score", "label", "damage", "origin")


@pytest.fixture
def varied(db):
    """Two cities of 12 POIs (images every 3rd, a flag on every 2nd without one), then made
    varied: every flag reason, each origin, a POI never ranked, damaged copies, labels."""
    lisbon, lisbon_list, first = make_pois(12, 3, city_name="Lisbon", flag_every=2)
    rome, rome_list, second = make_pois(12, 3, city_name="Rome", flag_every=2)
    pois = first + second
    for i, poi in enumerate(pois):
        ranking = poi.ranking
        if i % 12 == 3:  # a curated image: there before ranking
            ranking.image_origin = Origin.EXISTING
        elif i % 12 == 6:  # a curator's pick
            ranking.image_origin = Origin.CURATOR
        elif i % 12 == 4:  # a category fallback, still flagged
            PointOfInterest.objects.filter(pk=poi.pk).update(image_file="fallback/see.jpg")
            ranking.image_origin = Origin.FALLBACK
        if ranking.validation_id and i % 12 in (2, 8, 10):  # other reasons than below_threshold
            reason = {2: flags.NO_IMAGES, 8: flags.FETCH_FAILED, 10: flags.SHARED_PHOTO}[i % 12]
            ranking.validation.aggregate = reason
            ranking.validation.save()
        if i % 12 == 5:
            ranking.best_score = 9.1
        ranking.save()
        if i % 4 == 1:
            Candidate.objects.filter(poi=poi, search_rank=2).update(
                damage="dark copy of File:X.jpg"
            )
    for poi in pois[:5]:  # good labels on two POIs, bad on three, all candidates of POI 0
        for c in Candidate.objects.filter(poi=poi):
            if poi is pois[0] or c.search_rank == 1:
                label = "good" if poi in pois[:2] else "bad"
                ImageTrainingData.objects.create(poi=poi, image_url=c.image_url, label=label)
    never = PointOfInterest.objects.create(city=rome, name="Rome never ranked", category="see")
    rome_list.pois.add(never)
    PointOfInterest.objects.create(city=rome, name="Rome not listed", category="see")
    return {"lisbon": lisbon, "lisbon_list": lisbon_list, "rome": rome}


def oracle(poi: PointOfInterest, param: str, value: str) -> bool:
    """Whether `poi` belongs under `param=value`, read from its rows in Python."""
    ranking = PoiRanking.objects.filter(poi=poi).select_related("validation").first()
    candidates = list(Candidate.objects.filter(poi=poi))
    labels = dict(ImageTrainingData.objects.filter(poi=poi).values_list("image_url", "label"))
    has_file = bool(poi.image_file)
    origin = ranking.image_origin if ranking else ""
    if param == "flag":
        return bool(ranking and ranking.validation and ranking.validation.aggregate == value)
    if param == "score":
        best = ranking.best_score if ranking else None
        if value == "none":
            return best is None
        low, high = (float(x) for x in value.split("-"))
        return best is not None and low <= best and (best < high or (high == 10 and best == 10))
    if param == "label":
        if value == "unlabelled":
            return any(c.score is not None and c.image_url not in labels for c in candidates)
        return value in labels.values()
    if param == "damage":
        return any(c.damage for c in candidates) == (value == "damaged")
    if param == "origin":
        real = has_file and origin != Origin.FALLBACK
        return {
            "curated": real and origin == Origin.EXISTING,
            "pipeline": real and origin == Origin.PIPELINE,
            "curator": real and origin == Origin.CURATOR,
            "fallback": has_file and origin == Origin.FALLBACK,
            "none": not has_file,
        }[value]
    raise AssertionError(param)


def in_scope(scope: dict) -> list[PointOfInterest]:
    pois = PointOfInterest.objects.filter(lists__isnull=False).distinct()
    if "city" in scope:
        pois = pois.filter(city_id=scope["city"])
    if "list" in scope:
        pois = pois.filter(lists=scope["list"])
    return list(pois)


def shown(response) -> list[str]:
    return [card.poi.name for card in response.context["cards"]]


def options(response) -> dict[str, list[tuple[str, str, int | None]]]:
    return {choice.param: choice.options for choice in response.context["filter_groups"]}


def counted_page(client, query: dict | None = None):
    """The page once its counts are kept: the first page of a scope asks for them right
    after itself (`counts_url`), as the browser does, and the next page has them all."""
    first = client.get(DASH, query or {})
    if first.context["counts_url"]:
        assert client.get(first.context["counts_url"]).status_code == 200
    page = client.get(DASH, query or {})
    assert page.context["counts_url"] == ""
    return page


def test_every_option_counts_the_pois_its_filter_shows(staff_client, varied):
    """Each count is the size of its filter, in each scope, and the filter keeps exactly the
    POIs the oracle names (status is checked the same way in test_states)."""
    scopes = [{}, {"city": varied["lisbon"].pk}, {"list": varied["lisbon_list"].pk}]
    for scope in scopes:
        page = counted_page(staff_client, scope)
        pois = in_scope(scope)
        checked = 0
        for param, choices in options(page).items():
            assert choices, param
            for value, _, count in choices:
                response = staff_client.get(DASH, {**scope, param: value, "per_page": 50})
                names = shown(response)
                assert len(names) == count == response.context["page"].total, (scope, param, value)
                if param != "status":
                    expected = sorted(p.name for p in pois if oracle(p, param, value))
                    assert sorted(names) == expected, (scope, param, value)
                checked += count
                assert re.search(
                    rf'<option value="{re.escape(value)}">[^<]* \({count}\)</option>',
                    page.content.decode(),
                ), (param, value)
        assert checked > 0
    # Every group's options that part the POIs add up to the POIs in lists.
    page = counted_page(staff_client)
    total = page.context["counts"]["in_lists"]
    groups = options(page)
    for param in ("score", "damage", "origin"):
        assert sum(n for _, _, n in groups[param]) == total, param
    assert sum(n for _, _, n in groups["flag"]) == page.context["counts"]["flagged"]
    assert {v for v, _, n in groups["flag"] if n} == {
        flags.NO_IMAGES, flags.BELOW_THRESHOLD, flags.FETCH_FAILED, flags.SHARED_PHOTO
    }  # fmt: skip
    assert dict((v, n) for v, _, n in groups["label"])["good"] == 2


def test_filters_combine_with_each_other_the_search_and_the_sort(staff_client, varied):
    query = {"origin": "none", "damage": "damaged", "q": "lisbon", "sort": "score", "per_page": 50}
    response = staff_client.get(DASH, query)
    expected = [
        p
        for p in in_scope({})
        if oracle(p, "origin", "none") and oracle(p, "damage", "damaged") and "Lisbon" in p.name
    ]
    assert sorted(shown(response)) == sorted(p.name for p in expected) and expected
    scores = [card.ranking.best_score for card in response.context["cards"]]
    assert scores == sorted(scores, reverse=True)
    assert response.context["page"].total is None  # several filters: no count says it
    both = staff_client.get(DASH, {"flag": "below_threshold", "origin": "fallback"})
    assert shown(both) and all(
        oracle(c.poi, "flag", "below_threshold") and oracle(c.poi, "origin", "fallback")
        for c in both.context["cards"]
    )


def test_a_filter_no_poi_matches_shows_none_and_reads_no_ids(staff_client, varied):
    counted_page(staff_client)  # the counts, kept
    with CaptureQueriesContext(connection) as empty:
        response = staff_client.get(DASH, {"flag": flags.INTERNAL_ERROR})
    assert shown(response) == [] and response.context["page"].total == 0
    assert "No POIs match these filters." in response.content.decode()
    with CaptureQueriesContext(connection) as full:
        staff_client.get(DASH, {"flag": flags.NO_IMAGES})
    assert len(empty.captured_queries) < len(full.captured_queries)


def test_the_filters_stay_in_the_url_the_pager_the_actions_and_the_links(staff_client, varied):
    query = {"flag": "no_images", "score": "4-5", "label": "unlabelled", "per_page": 10}
    query |= {"damage": "none", "origin": "none"}
    response = staff_client.get(DASH, query)
    assert response.status_code == 200 and shown(response)
    wanted = {k: [str(v)] for k, v in query.items() if k != "per_page"}
    return_to = parse_qs(response.context["return_to"])
    assert {k: return_to[k] for k in wanted} == wanted
    html = response.content.decode()
    for param, value in wanted.items():
        assert f'<option value="{value[0]}" selected' in html, param
    export = parse_qs(response.context["view_query"])
    assert {k: export[k] for k in wanted} == wanted
    card = response.context["cards"][0]
    focus = staff_client.get(FOCUS, {"poi": card.poi.pk, **query})
    grid = parse_qs(urlparse(focus.context["grid_url"]).query)
    assert {k: grid[k] for k in wanted} == wanted


@pytest.mark.parametrize(
    "query",
    [
        "score=11-12",
        "score=5-4",
        "score=5",
        "score=-1-2",
        "flag=Below%20threshold",
        "flag=x;drop",
        "label=maybe",
        "damage=some",
        "origin=commons",
    ],
)
def test_a_bad_filter_value_is_a_400(staff_client, varied, query):
    assert staff_client.get(f"{DASH}?{query}").status_code == 400
    assert staff_client.get(f"{FOCUS}?poi=1&{query}").status_code == 400
    assert (
        staff_client.get(f"{reverse('image_ranking:export_view_csv')}?{query}").status_code == 400
    )


def test_a_linked_score_range_filters_and_is_offered(staff_client, varied):
    response = staff_client.get(DASH, {"score": "6.5-9.5", "per_page": 50})
    expected = sorted(p.name for p in in_scope({}) if oracle(p, "score", "6.5-9.5"))
    assert sorted(shown(response)) == expected and expected
    assert '<option value="6.5-9.5" selected>6.5\u20139.5</option>' in response.content.decode()


@pytest.mark.parametrize("sort", ["", "score"])
def test_the_focused_reviews_n_and_p_walk_the_filtered_view(staff_client, varied, sort):
    query = {"damage": "damaged", "sort": sort, "per_page": 50}
    grid = [c.poi.pk for c in staff_client.get(DASH, query).context["cards"]]
    assert sorted(grid) == sorted(p.pk for p in in_scope({}) if oracle(p, "damage", "damaged"))
    assert len(grid) >= 3
    walked, poi = [grid[0]], grid[0]
    while True:
        link = staff_client.get(FOCUS, {"poi": poi, **query}).context["nav"]["next_poi"]
        if not link:
            break
        poi = int(parse_qs(urlparse(link).query)["poi"][0])
        walked.append(poi)
    assert walked == grid
    back = staff_client.get(FOCUS, {"poi": grid[-1], **query}).context["nav"]["prev_poi"]
    assert int(parse_qs(urlparse(back).query)["poi"][0]) == grid[-2]


def test_the_export_of_a_filtered_view_has_exactly_its_pois_and_candidates(staff_client, varied):
    query = {"label": "unlabelled", "origin": "pipeline", "city": varied["lisbon"].pk}
    response = staff_client.get(reverse("image_ranking:export_view_csv"), query)
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    expected = [
        p
        for p in in_scope({"city": varied["lisbon"].pk})
        if oracle(p, "label", "unlabelled") and oracle(p, "origin", "pipeline")
    ]
    assert expected and {int(r["poi_id"]) for r in rows} == {p.pk for p in expected}
    assert len(rows) == Candidate.objects.filter(poi__in=expected).count()
    grid = staff_client.get(DASH, {**query, "per_page": 50})
    assert list(dict.fromkeys(int(r["poi_id"]) for r in rows)) == [
        c.poi.pk for c in grid.context["cards"]
    ]


def test_the_page_costs_the_same_queries_with_every_filter_on(staff_client, varied):
    counted_page(staff_client)  # the counts, kept until the data changes
    on = {"flag": "below_threshold", "score": "4-5", "label": "unlabelled", "damage": "none"}
    sizes = []
    for query in ({"per_page": 10}, {"per_page": 50}, {**on, "per_page": 10}, {**on, "q": "o"}):
        with CaptureQueriesContext(connection) as ctx:
            response = staff_client.get(DASH, query)
        assert response.status_code == 200 and shown(response)
        if "flag" in query:
            assert all(oracle(c.poi, "label", "unlabelled") for c in response.context["cards"])
            assert all(oracle(c.poi, "score", "4-5") for c in response.context["cards"])
        sizes.append(len(ctx.captured_queries))
    assert len(set(sizes)) == 1, sizes


def test_counts_come_right_after_the_page_are_kept_and_follow_a_label(staff_client, varied):
    """The first page shows the header's counts and asks for the others right after itself
    (the answer swaps each filter in place); the next page has them all and counts nothing.
    A label makes only the label counts come after the page again, one more."""
    first = staff_client.get(DASH)
    assert first.context["counts_url"]
    assert all(n is not None for _, _, n in options(first)["status"])
    assert all(n is None for _, _, n in options(first)["label"])
    fragment = staff_client.get(first.context["counts_url"])
    html = fragment.content.decode()
    for param in GROUPS:
        assert f'<label id="filter-{param}" hx-swap-oob="true">' in html
    good = dict((v, n) for v, _, n in options(fragment)["label"])["good"]
    assert re.search(rf'<option value="good">[^<]* \({good}\)</option>', html)
    with CaptureQueriesContext(connection) as warm:
        again = staff_client.get(DASH)
    assert again.context["counts_url"] == "" and options(again) == options(fragment)
    unlabelled_poi = next(
        c.poi for c in first.context["cards"] if not ImageTrainingData.objects.filter(poi=c.poi)
    )
    candidate = Candidate.objects.filter(poi=unlabelled_poi).first()
    url = reverse("image_ranking:label_candidate", args=[candidate.pk])
    assert staff_client.post(url, {"label": "good"}).status_code == 302
    with CaptureQueriesContext(connection) as labelled:
        after = staff_client.get(DASH)
    assert len(labelled.captured_queries) == len(warm.captured_queries)  # counts nothing
    assert after.context["counts_url"]
    assert all(n is None for _, _, n in options(after)["label"])
    assert options(after)["damage"] == options(again)["damage"]  # kept
    with CaptureQueriesContext(connection) as counting:
        fragment = staff_client.get(after.context["counts_url"])
    assert dict((v, n) for v, _, n in options(fragment)["label"])["good"] == good + 1
    sqls = [q["sql"].upper() for q in counting.captured_queries]
    assert len([sql for sql in sqls if "COUNT(" in sql and "MAX(" not in sql]) == 1  # labels
