"""The card's query form: staff only, CSRF, bad input changes nothing, a good one is kept and
re-ranks the POI."""

from __future__ import annotations

from django.urls import reverse

from image_ranking.models import PoiRanking, RankingRun


def url(poi) -> str:
    return reverse("image_ranking:search_query", args=[poi.pk])


def test_a_query_is_kept_and_the_poi_re_ranked(staff_client, pois):
    _city, _list, pois = pois
    poi = pois[1]
    response = staff_client.post(
        url(poi), {"query": "Miradouro", "titles": ""}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert PoiRanking.objects.get(poi=poi).search_query == "Miradouro"
    assert RankingRun.objects.filter(kind=RankingRun.Kind.POI).count() == 1
    page = staff_client.get(reverse("image_ranking:dashboard")).content.decode()
    assert '<span class="chip">kept for later runs</span>' in page


def test_bad_titles_give_400_and_change_nothing(staff_client, pois):
    _city, _list, pois = pois
    poi = pois[1]
    before = PoiRanking.objects.filter(poi=poi).values_list("search_query", "file_titles").first()
    response = staff_client.post(url(poi), {"query": "", "titles": "not a file"})
    assert response.status_code == 400
    after = PoiRanking.objects.filter(poi=poi).values_list("search_query", "file_titles").first()
    assert after == before and not RankingRun.objects.exists()


def test_staff_only_csrf_and_get_changes_nothing(plain_client, csrf_client, staff_client, pois):
    _city, _list, pois = pois
    poi = pois[1]
    assert plain_client.post(url(poi), {"query": "x"}).status_code == 302  # to the login page
    assert csrf_client.post(url(poi), {"query": "x"}).status_code == 403
    form = staff_client.get(url(poi))  # the card's form, fetched when "Searched for" opens
    assert form.status_code == 200 and 'name="query"' in form.content.decode()
    assert not PoiRanking.objects.filter(poi=poi, search_query="x").exists()
