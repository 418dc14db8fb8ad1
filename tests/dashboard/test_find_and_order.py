"""Find and order: name search (case and accents ignored), sort, the unlabelled filter and the
List filter limited to the chosen city, all kept in the URL, across pages and actions."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cities.models import PoiList, PointOfInterest
from image_ranking.models import Candidate, ImageTrainingData, PoiRanking
from image_ranking.review import search
from image_ranking.review.forms import filters_from_return_to
from tests.dashboard.factories import make_pois

URL = reverse("image_ranking:dashboard")
HTMX = {"HTTP_HX_REQUEST": "true"}


def shown(response) -> list[int]:
    """The POI ids of the cards on the page, in order."""
    return [int(pk) for pk in re.findall(r'id="poi-(\d+)"', response.content.decode())]


def rename(poi: PointOfInterest, name: str) -> PointOfInterest:
    PointOfInterest.objects.filter(pk=poi.pk).update(name=name)
    poi.name = name
    return poi


@pytest.fixture
def lisbon(db):
    city, poi_list, pois = make_pois(6, 3, image_every=3, flag_every=5)
    rename(pois[1], "Torre de Belém")
    rename(pois[2], "Belem Cultural Centre")
    rename(pois[3], "Mosteiro dos Jerónimos")
    return city, poi_list, pois


@pytest.mark.parametrize("query", ["Belem", "belém", "BELEM", "BELÉM", "bElÉm"])
def test_search_ignores_case_and_accents(staff_client, lisbon, query):
    _, _, pois = lisbon
    response = staff_client.get(URL, {"q": query})
    assert response.status_code == 200
    assert sorted(shown(response)) == sorted([pois[1].pk, pois[2].pk])


def test_search_finds_a_word_inside_the_name_and_nothing_else(staff_client, lisbon):
    _, _, pois = lisbon
    assert shown(staff_client.get(URL, {"q": "jeronimos"})) == [pois[3].pk]
    assert shown(staff_client.get(URL, {"q": "no such place"})) == []


@pytest.mark.parametrize("query", ["(", "[e", ".*", "a|b", "\\", "100%", "_", "é+"])
def test_regex_characters_are_searched_literally(staff_client, lisbon, query):
    response = staff_client.get(URL, {"q": query})
    assert response.status_code == 200 and shown(response) == []


@pytest.mark.parametrize(
    "query, name",
    [
        ("Sant'Ignazio", "Sant\u2019Ignazio di Loyola"),
        ("Sant\u2019Ignazio", "Sant'Ignazio di Loyola"),
        ("MUDE - Museu", "MUDE \u2013 Museu do Design"),
        ("'Trieste'", "Quartiere \u2018Trieste\u2019"),
    ],
)
def test_apostrophes_and_dashes_match_their_typographic_forms(staff_client, lisbon, query, name):
    _, _, pois = lisbon
    rename(pois[4], name)
    assert shown(staff_client.get(URL, {"q": query})) == [pois[4].pk]


def test_search_pattern_is_literal_outside_letters():
    assert search.name_pattern("a.b") == f"[{search._accent_classes()['a']}]\\.b"
    assert search.fold("São Tomé") == "sao tome"


def test_a_querys_plain_part_is_looked_for_first_and_loses_no_match(staff_client, lisbon):
    """The LIKE that runs before the regular expression takes only what every match has:
    digits, spaces and letters without accented forms, never an accentable letter or a dash."""
    _, _, pois = lisbon
    rename(pois[4], "Belém 1 \u2013 Torre")
    rename(pois[5], "BELEM 10")
    assert search.literal_part("belem 1") == "m 1"
    assert search.literal_part("Sìght 02") == " 02"
    assert search.literal_part("belem") == "" and search.literal_part("x-b") == ""
    found = shown(staff_client.get(URL, {"q": "belem 1"}))
    assert sorted(found) == sorted([pois[4].pk, pois[5].pk])
    assert shown(staff_client.get(URL, {"q": "BELÉM 1 - torre"})) == [pois[4].pk]


def test_a_too_long_search_is_shortened_and_the_page_says_so(staff_client, lisbon):
    """Not a bare text/plain 400: the search box keeps its first 100 characters, as the
    box itself does, and the page says it shortened it."""
    _, _, pois = lisbon
    name = pois[4].name
    response = staff_client.get(URL, {"q": name + " " * (100 - len(name)) + "x" * 200})
    assert response.status_code == 200
    assert "data-search-clipped" in response.content.decode()
    assert response.context["filters"].q == name  # the first 100 characters, trimmed
    assert shown(response) == [pois[4].pk]
    assert "data-search-clipped" not in staff_client.get(URL, {"q": "x" * 100}).content.decode()


def set_ranking(poi, **fields):
    PoiRanking.objects.filter(poi=poi).update(**fields)


def test_sort_by_best_score_status_and_last_ranked(staff_client, lisbon):
    _, _, pois = lisbon
    for i, poi in enumerate(pois):
        set_ranking(poi, best_score=1.0 + i, ranked_at=timezone.now() - timezone.timedelta(days=i))
    set_ranking(pois[4], best_score=None, ranked_at=None)
    by_score = shown(staff_client.get(URL, {"sort": "score"}))
    assert by_score == [pois[i].pk for i in (5, 3, 2, 1, 0, 4)]  # nulls last
    by_ranked = shown(staff_client.get(URL, {"sort": "ranked"}))
    assert by_ranked == [pois[i].pk for i in (0, 1, 2, 3, 5, 4)]  # latest first, nulls last
    by_status = shown(staff_client.get(URL, {"sort": "status"}))
    statuses = dict(PoiRanking.objects.values_list("poi_id", "status"))
    assert [statuses[pk] for pk in by_status] == sorted(statuses[pk] for pk in by_status)
    by_name = shown(staff_client.get(URL))
    names = dict(PointOfInterest.objects.values_list("pk", "name"))
    assert [names[pk] for pk in by_name] == sorted(names.values())


def test_an_unknown_sort_is_a_bad_request(staff_client, lisbon):
    assert staff_client.get(URL, {"sort": "random"}).status_code == 400


def test_unlabelled_keeps_pois_with_a_scored_candidate_without_label(staff_client, lisbon):
    _, _, pois = lisbon
    done, unscored = pois[0], pois[1]
    for c in Candidate.objects.filter(poi=done):
        ImageTrainingData.objects.create(poi=done, image_url=c.image_url, label="good")
    Candidate.objects.filter(poi=unscored).update(score=None)
    # A label of the same image on another POI does not count for this one.
    other = Candidate.objects.filter(poi=pois[2]).first()
    ImageTrainingData.objects.create(poi=pois[3], image_url=other.image_url, label="bad")
    page = shown(staff_client.get(URL, {"unlabelled": "1"}))
    assert sorted(page) == sorted(p.pk for p in pois[2:])
    assert len(shown(staff_client.get(URL))) == 6


def test_filters_combine(staff_client, lisbon):
    _, _, pois = lisbon
    for c in Candidate.objects.filter(poi=pois[2]):
        ImageTrainingData.objects.create(poi=pois[2], image_url=c.image_url, label="good")
    assert shown(staff_client.get(URL, {"q": "belem", "unlabelled": "1"})) == [pois[1].pk]
    missing = shown(staff_client.get(URL, {"q": "belem", "status": "missing", "sort": "score"}))
    assert sorted(missing) == sorted([pois[1].pk, pois[2].pk])


# --- The List filter within the chosen city --------------------------------------------------


@pytest.fixture
def two_cities(lisbon):
    _, _, porto_pois = make_pois(2, 2, city_name="Porto", list_title="Porto sights")
    return lisbon, PoiList.objects.get(title="Porto sights"), porto_pois


def list_options(response) -> list[int]:
    html = response.content.decode()
    select = re.search(r'<select name="list">(.*?)</select>', html, re.S).group(1)
    return [int(v) for v in re.findall(r'value="(\d+)"', select)]


def test_list_options_are_those_of_the_chosen_city(staff_client, two_cities):
    (city, lisbon_list, _), porto_list, _ = two_cities
    assert list_options(staff_client.get(URL, {"city": city.pk})) == [lisbon_list.pk]
    assert sorted(list_options(staff_client.get(URL))) == sorted([lisbon_list.pk, porto_list.pk])


def test_a_list_of_another_city_is_dropped(staff_client, two_cities):
    (city, _, pois), porto_list, _ = two_cities
    response = staff_client.get(URL, {"city": city.pk, "list": porto_list.pk})
    assert response.status_code == 200
    assert sorted(shown(response)) == sorted(p.pk for p in pois)  # the city, every list
    assert response.context["filters"].list_id is None
    assert f"list={porto_list.pk}" not in response.context["return_to"]
    kept = filters_from_return_to(f"city={city.pk}&list={porto_list.pk}&q=bel")
    assert kept.list_id is None and kept.city_id == city.pk and kept.q == "bel"


def test_an_unknown_list_is_still_a_bad_request(staff_client, two_cities):
    assert staff_client.get(URL, {"list": 99999}).status_code == 400


# --- Kept in the URL, across pages and actions -----------------------------------------------


def test_search_sort_and_unlabelled_are_kept_across_pages_and_actions(staff_client, db):
    city, _, pois = make_pois(25, 2, image_every=0, flag_every=0)
    # "unlabelled=1" (the earlier "Unlabelled only" box, in old links) is the label filter's
    # "unlabelled", and the page's links say so.
    params = {"q": "sight", "sort": "score", "unlabelled": "1", "city": city.pk, "per_page": 10}
    response = staff_client.get(URL, params)
    assert response.status_code == 200 and len(shown(response)) == 10
    next_url = response.context["next_url"]
    query = parse_qs(urlparse(next_url).query)
    assert (
        query["q"] == ["sight"] and query["sort"] == ["score"] and query["label"] == ["unlabelled"]
    )
    assert query["page"] == ["2"]
    return_to = response.context["return_to"]
    assert "q=sight" in return_to and "sort=score" in return_to and "label=unlabelled" in return_to
    assert (
        f'name="return_to" value="{return_to.replace("&", "&amp;")}"' in response.content.decode()
    )
    html = response.content.decode()
    assert 'name="q" value="sight"' in html and '<option value="unlabelled" selected' in html
    # An action without JavaScript comes back to the same filtered page.
    cand = Candidate.objects.filter(poi=pois[0]).first()
    label_url = reverse("image_ranking:label_candidate", args=[cand.pk])
    back = staff_client.post(label_url, {"label": "good", "return_to": return_to})
    assert back.status_code == 302
    assert parse_qs(urlparse(back.url).query) == parse_qs(return_to)
    filters = filters_from_return_to(return_to + "&sort=bogus")
    assert filters.q == "sight" and filters.label == "unlabelled" and filters.sort == ""


def test_htmx_actions_keep_the_filters_in_their_fragments(staff_client, lisbon):
    _, _, pois = lisbon
    cand = Candidate.objects.filter(poi=pois[1]).first()
    url = reverse("image_ranking:label_candidate", args=[cand.pk])
    return_to = "q=belem&label=unlabelled&sort=status"
    response = staff_client.post(url, {"label": "bad", "return_to": return_to}, **HTMX)
    assert response.status_code == 200
    values = re.findall(r'name="return_to" value="([^"]*)"', response.content.decode())
    assert values and all(parse_qs(v.replace("&amp;", "&")) == parse_qs(return_to) for v in values)


def test_the_page_costs_the_same_queries_with_search_and_sort(staff_client, db):
    make_pois(60, 3, bulk=True)
    staff_client.get(URL)  # the header counts, kept until the data changes
    counts = []
    for per_page in (10, 50):
        with CaptureQueriesContext(connection) as ctx:
            response = staff_client.get(
                URL, {"q": "sight", "sort": "score", "unlabelled": "1", "per_page": per_page}
            )
        assert response.status_code == 200 and len(shown(response)) == per_page
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


def test_get_with_the_new_parameters_changes_nothing(staff_client, lisbon):
    before = (ImageTrainingData.objects.count(), list(PoiRanking.objects.values()))
    staff_client.get(URL, {"q": "belem", "sort": "ranked", "unlabelled": "1"})
    assert (ImageTrainingData.objects.count(), list(PoiRanking.objects.values())) == before


def test_only_staff_see_search_results(client, plain_client, lisbon):
    for visitor in (client, plain_client):
        response = visitor.get(URL, {"q": "belem"})
        assert response.status_code == 302 and "/login/" in response.url
        assert "Belém" not in response.content.decode()


# --- Every page of every order is the sorted view ---------------------------------------------


@pytest.fixture
def three_cities(db):
    """Three cities whose names sort otherwise than their ids, POIs with equal names, a POI in
    no list: the default order's every tie-breaker shows."""
    for name in ("Zagreb", "Amsterdam", "Lisbon"):
        make_pois(13, 1, city_name=name, list_title=f"{name} top", image_every=2, flag_every=3)
    for poi in PointOfInterest.objects.filter(name__endswith="00002"):
        rename(poi, "Same name")
    PointOfInterest.objects.create(city=PoiList.objects.first().city, name="Aaa not listed")


def sorted_view(pois: list[PointOfInterest], sort: str) -> list[int]:
    """The POIs in the order of `sort`, read in Python: the default by city name, name, pk;
    the others by the ranking field (empty ones last), ties by pk, pk in the field's
    direction."""
    from image_ranking.review.ordering import SORT_KEYS

    if not sort:
        return [p.pk for p in sorted(pois, key=lambda p: (p.city.name, p.name, p.pk))]
    (path, desc), _ = SORT_KEYS[sort]
    field = path.removeprefix("ranking__")
    value = {p.pk: getattr(getattr(p, "ranking", None), field, None) for p in pois}
    keyed = sorted((p.pk for p in pois if value[p.pk] is not None),
                   key=lambda pk: (value[pk], pk), reverse=desc)  # fmt: skip
    rest = sorted((p.pk for p in pois if value[p.pk] is None), reverse=desc)
    return keyed + rest


@pytest.mark.parametrize("sort", ["", "score", "status", "ranked"])
@pytest.mark.parametrize("query", [{}, {"status": "missing"}, {"q": "a"}, {"origin": "none"}])
def test_every_page_is_the_view_in_its_sorts_order(staff_client, three_cities, sort, query):
    """Page by page (10 a page, so pages cross cities) the grid is the view sorted in Python.
    On PostgreSQL the default order reads city by city (a LATERAL join): test_postgres.py
    runs this module there too."""
    from image_ranking.review import selectors
    from image_ranking.review.forms import FilterForm

    form = FilterForm({**query, "sort": sort})
    assert form.is_valid()
    view = list(selectors.matching(form.filters()).select_related("city", "ranking"))
    assert len(view) > 10
    pages: list[int] = []
    for number in range(1, 10):
        response = staff_client.get(URL, {**query, "sort": sort, "per_page": 10, "page": number})
        pages += shown(response)
        if not response.context["page"].has_next:
            break
    assert pages == sorted_view(view, sort)


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="PostgreSQL's trigram index (this module runs there too, from test_postgres.py)",
)
def test_on_postgresql_a_name_search_reads_the_trigram_index(lisbon):
    # At 100,000 POIs the planner takes the index (66 -> 3 ms); with a few rows it would
    # rather scan, so scans are switched off to ask whether the index fits the query at all.
    pois = search.search(PointOfInterest.objects.all(), "Torre 02")
    sql, params = pois.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "poi_name_upper_trgm" in plan, plan
