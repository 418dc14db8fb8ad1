"""A curator's better query for a POI: a different wording, or the File: titles they know are
right, kept for later runs and still one API request per POI."""

from __future__ import annotations

import pytest

from image_ranking.models import Candidate, PoiRanking
from image_ranking.pipeline.ranking import Outcome, rank_poi
from image_ranking.review.search_query import SearchQueryForm, file_title, save_search
from tests.fakes.images import photo
from tests.ranking.helpers import FixedScorer


@pytest.fixture(autouse=True)
def fixed_scorer(monkeypatch):
    monkeypatch.setattr(
        "image_ranking.pipeline.ranking.get_scorer", lambda name=None: FixedScorer()
    )


def test_a_curators_query_replaces_the_name_in_every_later_run(make_poi, commons_server):
    poi = make_poi("Cathedral")  # too vague a name: nothing found
    file = commons_server.add_file("Sé de Lisboa.jpg", photo("coffee"))
    commons_server.set_results("Sé de Lisboa", [file])
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.FLAGGED
    assert PoiRanking.objects.get(poi=poi).searched_for == "filetype:bitmap Cathedral"

    save_search(poi, "Sé de Lisboa", [])
    assert rank_poi(poi.pk, threshold=0, replace_existing=True).outcome == Outcome.UPDATED
    ranking = PoiRanking.objects.get(poi=poi)
    assert ranking.searched_for == "filetype:bitmap Sé de Lisboa (a curator's query)"
    assert [r.search_text for r in commons_server.api_requests()] == ["Cathedral", "Sé de Lisboa"]


def test_pasted_file_titles_are_fetched_in_one_request_and_trusted(make_poi, commons_server):
    make_poi("Ajuda Botanical Gardens")
    poi = make_poi("Lisbon Botanical Gardens")
    wanted = commons_server.add_file("Jardim Botânico de Lisboa 2.jpg", photo("chelsea"))
    also = commons_server.add_file("Ajuda Botanical Gardens greenhouse.jpg", photo("rocket"))
    save_search(poi, "", [wanted.title, also.title, "File:Does not exist.jpg"])
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED
    [request] = commons_server.api_requests()
    assert "titles" in request.query and "generator" not in request.query
    rows = {c.title: c for c in Candidate.objects.filter(poi=poi)}
    assert set(rows) == {wanted.title, also.title}  # the missing page is left out
    assert rows[wanted.title].is_winner  # the curator's order, not the other POI's name, counts
    assert all(c.eligible for c in rows.values())
    searched_for = PoiRanking.objects.get(poi=poi).searched_for
    assert searched_for.startswith("File titles chosen by a curator")
    # The title Commons does not know is said on the card, not dropped without a word.
    assert searched_for.endswith("; not on Commons or no photo: File:Does not exist.jpg")


def test_a_curators_query_or_titles_that_find_nothing_say_so(make_poi, commons_server):
    poi = make_poi("Jardim Zoológico")
    save_search(poi, "Lisbon Zoo", [])
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.FLAGGED
    reason = PoiRanking.objects.get(poi=poi).reason
    assert reason == "No raster photo found on Commons for the curator's query “Lisbon Zoo”"

    save_search(poi, "", ["File:Nowhere.jpg"])
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.FLAGGED
    ranking = PoiRanking.objects.get(poi=poi)
    assert ranking.reason == (
        "None of the File: titles chosen by a curator is a raster photo on Commons"
    )
    assert ranking.searched_for.endswith("not on Commons or no photo: File:Nowhere.jpg")


@pytest.mark.parametrize(
    "text, title",
    [
        ("Torre de Belém.jpg", "File:Torre de Belém.jpg"),
        ("File:Torre_de_Belém.jpg", "File:Torre de Belém.jpg"),
        ("https://commons.wikimedia.org/wiki/File:Torre_de_Bel%C3%A9m.jpg",
         "File:Torre de Belém.jpg"),
    ],
)  # fmt: skip
def test_file_titles_are_read_from_names_and_commons_links(text, title):
    assert file_title(text) == title


@pytest.mark.parametrize("text", ["File:", "no extension", "A|B.jpg", "https://example.org/x.jpg"])
def test_bad_file_titles_are_refused(text):
    form = SearchQueryForm({"query": "", "titles": text})
    assert not form.is_valid() and "titles" in form.errors


def test_at_most_ten_titles():
    form = SearchQueryForm({"titles": "\n".join(f"File:{i}.jpg" for i in range(11))})
    assert not form.is_valid()
