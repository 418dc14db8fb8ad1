"""The right photo: one that names the place beats one that names another POI of the city,
one file never wins for two POIs, damaged near-duplicates lose to their original, the search
looks past the first ten hits, and a distance check without coordinates says so. Always one
API request per POI."""

from __future__ import annotations

import pytest

from image_ranking.models import Candidate, PoiRanking
from image_ranking.pipeline.ranking import Outcome, rank_poi
from image_ranking.pipeline.relevance import NAMES_OTHER, NAMES_THIS, NEUTRAL, Place, assess
from tests.fakes.images import degrade, photo
from tests.ranking.helpers import FixedScorer, flags_of, store_bytes


@pytest.fixture
def fixed_scorer(monkeypatch):
    """Relevance decides here, not beauty: every candidate scores the same."""
    monkeypatch.setattr(
        "image_ranking.pipeline.ranking.get_scorer", lambda name=None: FixedScorer()
    )


def winner(poi) -> str:
    return Candidate.objects.get(poi=poi, is_winner=True).title


@pytest.mark.parametrize(
    "poi, city, title, categories, others, tier",
    [
        ("Lisbon Botanical Gardens", "Lisbon", "File:Ajuda Botanical Gardens.jpg", [],
         ["Ajuda Botanical Gardens"], NAMES_OTHER),
        ("Ajuda Botanical Gardens", "Lisbon", "File:Ajuda Botanical Gardens.jpg", [],
         ["Lisbon Botanical Gardens"], NAMES_THIS),
        ("Museum of the City of New York", "New York", "File:Museum of the Moving Image.jpg",
         [], ["Museum of the Moving Image"], NAMES_OTHER),
        ("Torre de Belém", "Lisbon", "File:DSC 0042.jpg", ["Torre de Belem", "Belém"], [],
         NAMES_THIS),
        ("Torre de Belém", "Lisbon", "File:Sunset over the river.jpg", ["Tagus"], [], NEUTRAL),
    ],
)  # fmt: skip
def test_relevance_from_title_and_categories(poi, city, title, categories, others, tier):
    rivals = [Place.of(o, city) for o in others]
    assert assess(Place.of(poi, city), title, categories, rivals).tier == tier


def test_a_photo_titled_for_another_poi_of_the_city_loses_to_one_titled_for_this_one(
    make_poi, commons_server, fixed_scorer
):
    make_poi("Ajuda Botanical Gardens")
    poi = make_poi("Lisbon Botanical Gardens")
    other = commons_server.add_file("Ajuda Botanical Gardens.jpg", photo("coffee"))
    own = commons_server.add_file("Jardim Botanico de Lisboa.jpg", photo("chelsea"),
                                  categories=["Lisbon Botanical Gardens"])  # fmt: skip
    commons_server.set_results("Lisbon Botanical Gardens", [other, own])
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED
    assert winner(poi) == own.title
    loser = Candidate.objects.get(poi=poi, title=other.title)
    assert not loser.eligible and "Ajuda Botanical Gardens" in loser.ineligible_reason
    assert (
        "category Lisbon Botanical Gardens"
        in Candidate.objects.get(poi=poi, title=own.title).relevance
    )
    assert len(commons_server.api_requests()) == 1


def test_the_same_file_never_wins_for_two_pois_of_a_city(make_poi, commons_server, fixed_scorer):
    ajuda, lisbon = make_poi("Ajuda Botanical Gardens"), make_poi("Lisbon Botanical Gardens")
    shared = commons_server.add_file("Estufa.jpg", photo("coffee"))  # names neither
    second = commons_server.add_file("Greenhouse.jpg", photo("rocket"))
    commons_server.set_results("Ajuda Botanical Gardens", [shared])
    commons_server.set_results("Lisbon Botanical Gardens", [shared, second])

    assert rank_poi(ajuda.pk, threshold=0).outcome == Outcome.UPDATED
    assert rank_poi(lisbon.pk, threshold=0).outcome == Outcome.UPDATED
    assert winner(ajuda) == shared.title and winner(lisbon) == second.title
    taken = Candidate.objects.get(poi=lisbon, title=shared.title)
    assert "already the photo of Ajuda Botanical Gardens" in taken.ineligible_reason


def test_a_shared_photo_goes_to_the_poi_it_names_and_the_other_is_flagged(
    make_poi, commons_server, fixed_scorer
):
    lisbon, ajuda = make_poi("Lisbon Botanical Gardens"), make_poi("Ajuda Botanical Gardens")
    shared = commons_server.add_file("Ajuda gardens entrance.jpg", photo("coffee"),
                                     categories=["Ajuda Botanical Gardens"])  # fmt: skip
    commons_server.set_results("Botanical", [shared])
    commons_server.set_results("Lisbon Botanical Gardens", [shared])
    commons_server.set_results("Ajuda Botanical Gardens", [shared])
    # The Lisbon POI got it first (an older run, before it was known to be Ajuda's) ...

    store_bytes(lisbon, shared.data, origin=PoiRanking.Origin.PIPELINE)
    PoiRanking.objects.filter(poi=lisbon).update(image_sha1=shared.sha1, image_title=shared.title)
    Candidate.objects.create(poi=lisbon, search_rank=1, title=shared.title, sha1=shared.sha1,
                             image_url=commons_server.url_for_original(shared), is_winner=True,
                             categories=["Ajuda Botanical Gardens"])  # fmt: skip
    # ... now Ajuda's own ranking takes it, and the Lisbon POI is flagged for a curator.
    assert rank_poi(ajuda.pk, threshold=0).outcome == Outcome.UPDATED
    assert winner(ajuda) == shared.title
    assert flags_of(lisbon) == ["shared_photo"]


def test_every_photo_good_enough_being_another_pois_flags_shared_photo(
    make_poi, commons_server, fixed_scorer
):
    ajuda, lisbon = make_poi("Ajuda Botanical Gardens"), make_poi("Lisbon Botanical Gardens")
    shared = commons_server.add_file("Estufa.jpg", photo("coffee"))
    commons_server.set_results("Ajuda Botanical Gardens", [shared])
    commons_server.set_results("Lisbon Botanical Gardens", [shared])
    rank_poi(ajuda.pk, threshold=0)
    assert rank_poi(lisbon.pk, threshold=0).outcome == Outcome.FLAGGED
    assert flags_of(lisbon) == ["shared_photo"]
    lisbon.refresh_from_db()
    assert not lisbon.image_file


def test_the_search_looks_past_the_first_ten_hits_for_the_pois_own_photo(
    make_poi, commons_server, fixed_scorer, settings
):
    settings.IMAGE_RANKING_SEARCH_DEPTH = 20
    poi = make_poi("Museum of the City of New York")
    make_poi("Museum of the Moving Image")
    rocket = degrade(photo("rocket"), "dark")
    strangers = [
        commons_server.add_file(f"Museum of the Moving Image {i}.jpg", rocket.rotate(i * 20))
        for i in range(12)
    ]
    own = commons_server.add_file("Museum of the City of New York facade.jpg", photo("chelsea"))
    commons_server.set_results("Museum of the City of New York", [*strangers, own])
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED
    assert winner(poi) == own.title  # hit 13 of 13, found in the same single request
    [request] = commons_server.api_requests()
    assert request.query["gsrlimit"] == "20"
    assert Candidate.objects.filter(poi=poi).count() == 10  # still at most 10 scored


def test_without_geodata_the_card_says_the_distance_was_not_checked(
    make_poi, commons_server, fixed_scorer
):
    from image_ranking.commons import answers

    commons_server.geodata = False
    poi = make_poi("Padrão dos Descobrimentos")
    commons_server.set_results(
        "Padrão dos Descobrimentos", [commons_server.add_file("P.jpg", photo("coffee"))]
    )
    try:
        assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED
        assert PoiRanking.objects.get(poi=poi).distance_check == PoiRanking.DistanceCheck.NO_GEODATA
    finally:
        answers._WITHOUT_GEODATA.discard(commons_server.api_url)


def test_the_distance_check_is_recorded_when_it_ran(make_poi, commons_server, fixed_scorer):
    poi = make_poi("Elevador da Bica")
    commons_server.set_results("Elevador da Bica", [
        commons_server.add_file("Bica.jpg", photo("coffee"), coords=(38.7101, -9.1466))
    ])  # fmt: skip
    rank_poi(poi.pk, threshold=0)
    assert PoiRanking.objects.get(poi=poi).distance_check == PoiRanking.DistanceCheck.CHECKED


def test_a_dark_copy_loses_to_its_original_with_a_reason_on_its_tile(
    make_poi, commons_server, nima_scorer
):
    poi = make_poi("Altice Arena")
    base = photo("astronaut").resize((900, 900))
    files = [
        commons_server.add_file("Arena dark.jpg", degrade(base, "dark")),
        commons_server.add_file("Arena.jpg", base),
    ]
    commons_server.set_results("Altice Arena", files)
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED
    assert winner(poi) == "File:Arena.jpg"
    dark = Candidate.objects.get(poi=poi, title="File:Arena dark.jpg")
    assert dark.damage == "dark copy of File:Arena.jpg"
    assert dark.rank_score < Candidate.objects.get(poi=poi, title="File:Arena.jpg").rank_score


def test_a_re_rank_that_keeps_the_image_keeps_its_candidate_marked_the_winner(
    make_poi, commons_server, fixed_scorer
):
    poi = make_poi("Miradouro da Graça")
    files = [
        commons_server.add_file(f"Graca {i}.jpg", photo(n))
        for i, n in enumerate(["coffee", "rocket"])
    ]
    commons_server.set_results("Miradouro da Graça", files)
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED
    first = winner(poi)
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.RANKED  # scope all: the image is kept
    assert winner(poi) == first
    assert rank_poi(poi.pk, threshold=0, replace_existing=True).outcome == Outcome.UPDATED
    assert Candidate.objects.filter(poi=poi, is_winner=True).count() == 1
