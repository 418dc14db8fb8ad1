"""The card says why a candidate won or lost: the relevance evidence, a damaged copy's reason,
and a distance check that could not run."""

from __future__ import annotations

from django.urls import reverse

from image_ranking.models import Candidate, PoiRanking


def test_tiles_show_relevance_and_damage_and_the_card_an_unchecked_distance(staff_client, pois):
    _city, _list, pois = pois
    poi = pois[1]
    first, second = Candidate.objects.filter(poi=poi).order_by("search_rank")[:2]
    Candidate.objects.filter(pk=first.pk).update(relevance="title names botanical, gardens")
    Candidate.objects.filter(pk=second.pk).update(
        damage="dark copy of File:Jardim.jpg", rank_score=(second.score or 5) - 1
    )
    PoiRanking.objects.update_or_create(
        poi=poi, defaults={"distance_check": PoiRanking.DistanceCheck.NO_GEODATA}
    )
    page = staff_client.get(reverse("image_ranking:dashboard")).content.decode()
    assert "Dark copy of File:Jardim.jpg" in page  # on the tile, as a badge with words
    focus = reverse("image_ranking:focus")  # why it counts as this place's photo: focused
    review = staff_client.get(focus, {"poi": poi.pk, "img": f"c{first.pk}"}).content.decode()
    assert "Title names botanical, gardens" in review
    assert "Distance not checked: the wiki sent no coordinates (no GeoData)." in page
    assert page.count("data-distance-check=") == 1  # only where it did not run
