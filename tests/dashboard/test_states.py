"""One definition of each state: the dashboard's counts are the sizes of its status filters,
for every state, and a fallback image reads as "fallback" everywhere (chip, note, counts)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from cities.models import City, PoiList, PointOfInterest
from image_ranking.models import PoiRanking, RankablePoi
from image_ranking.pipeline import flags
from image_ranking.review import selectors
from image_ranking.review.cards import Tile, safe_link

pytestmark = pytest.mark.django_db

DASH = reverse("image_ranking:dashboard")
HTMX = {"HTTP_HX_REQUEST": "true"}
Origin = PoiRanking.Origin
Status = PoiRanking.Status


def poi_in_state(city, poi_list, name, *, image=False, origin="", status=None, flag=None):
    poi = PointOfInterest.objects.create(
        city=city,
        name=name,
        category="see",
        image_file=f"cities/images/pois/x/{name}.jpg" if image else "",
    )
    poi_list.pois.add(poi)
    if status is not None:
        ranking = PoiRanking.objects.create(poi=poi, status=status, image_origin=origin)
        if flag:
            flags.set_flag(poi, ranking, flag, f"{flag} for {name}")
            ranking.save()
    return poi


@pytest.fixture
def every_state(db):
    """Two or more POIs in every state, in two cities, and one POI in no list."""
    rows = []
    for city_name in ("Lisbon", "Rome"):
        city = City.objects.create(name=city_name)
        poi_list = PoiList.objects.create(title=f"{city_name} top", city=city)

        def add(name, **kw):
            rows.append(poi_in_state(city, poi_list, f"{city_name} {name}", **kw))

        add("never ranked")
        add("curated, never ranked", image=True)
        add("curated, ranked", image=True, status=Status.RANKED)
        add("chosen", image=True, origin=Origin.CURATOR, status=Status.UPDATED)
        add("pipeline", image=True, origin=Origin.PIPELINE, status=Status.UPDATED)
        add("pipeline re-ranked", image=True, origin=Origin.PIPELINE, status=Status.RANKED)
        add("no images", status=Status.FLAGGED, flag=flags.NO_IMAGES)
        add("below", status=Status.FLAGGED, flag=flags.BELOW_THRESHOLD)
        add("fetch failed", status=Status.FAILED, flag=flags.FETCH_FAILED)
        add("internal error", status=Status.FAILED, flag=flags.INTERNAL_ERROR)
        add(
            "fallback flagged",
            image=True,
            origin=Origin.FALLBACK,
            status=Status.FLAGGED,
            flag=flags.BELOW_THRESHOLD,
        )
        add("fallback only", image=True, origin=Origin.FALLBACK, status=Status.FLAGGED)
        add("pending", status=Status.PENDING)
        PointOfInterest.objects.create(city=city, name=f"{city_name} not listed", category="see")
    return rows


def names(response) -> list[str]:
    return sorted(c.poi.name for c in response.context["cards"])


def test_counts_equal_the_filters_result_sizes_for_every_state(staff_client, every_state):
    city = City.objects.get(name="Lisbon")
    poi_list = PoiList.objects.get(title="Rome top")
    for scope in ("", f"city={city.pk}", f"list={poi_list.pk}"):
        counts = staff_client.get(f"{DASH}?{scope}").context["counts"]
        for status in selectors.STATUSES:
            page = staff_client.get(f"{DASH}?{scope}&status={status}&per_page=50")
            shown = len(page.context["cards"])  # the filter's own result, not the count
            assert shown == page.context["page"].total == counts[status], (scope, status)
        everything = staff_client.get(f"{DASH}?{scope}&per_page=50")
        assert len(everything.context["cards"]) == counts["in_lists"]
    counts = staff_client.get(DASH).context["counts"]
    assert counts == {
        "in_lists": 26,
        "missing": 16,  # 6 without an image, 2 with only a fallback, per city
        "fallback": 4,
        "flagged": 10,  # no images, below, fetch failed, internal error, fallback flagged
        "ranked": 16,
        "has_image": 10,  # curated (2), chosen, pipeline (2)
        "labelled": 0,
    }


def test_each_status_filter_is_the_rankable_poi_definition(staff_client, every_state):
    listed = RankablePoi.objects.in_lists()
    for status, (_, method) in selectors.STATES.items():
        page = staff_client.get(f"{DASH}?status={status}&per_page=50")
        expected = sorted(getattr(listed, method)().values_list("name", flat=True))
        assert names(page) == expected, status
    flagged = names(staff_client.get(f"{DASH}?status=flagged&city={every_state[0].city_id}"))
    assert flagged == sorted(
        f"Lisbon {n}"
        for n in ("no images", "below", "fetch failed", "internal error", "fallback flagged")
    )
    fallback = names(staff_client.get(f"{DASH}?status=fallback"))
    assert fallback == sorted(
        f"{c} {n}" for c in ("Lisbon", "Rome") for n in ("fallback flagged", "fallback only")
    )
    # "Has image" = a real image: the curated, the chosen and the pipeline's, no fallback.
    has_image = names(staff_client.get(f"{DASH}?status=has_image&city={every_state[0].city_id}"))
    assert has_image == sorted(
        f"Lisbon {n}"
        for n in ("curated, never ranked", "curated, ranked", "chosen", "pipeline",
                  "pipeline re-ranked")
    )  # fmt: skip


def test_a_fallback_card_says_fallback_and_keeps_its_flag_reason(staff_client, every_state):
    poi = next(p for p in every_state if p.name == "Lisbon fallback flagged")
    html = staff_client.get(reverse("image_ranking:poi_card", args=[poi.pk])).text
    assert "data-fallback-chip" in html and "poi--fallback" in html
    assert "still needs a photo" in html
    assert "below_threshold for Lisbon fallback flagged" in html  # the flag stays visible
    real = next(p for p in every_state if p.name == "Lisbon chosen")
    html = staff_client.get(reverse("image_ranking:poi_card", args=[real.pk])).text
    assert "data-fallback-chip" not in html and "Category fallback</button>" not in html


def test_category_fallback_moves_the_fallback_count_and_keeps_the_poi_missing(
    staff_client, every_state, media_root
):
    poi = next(p for p in every_state if p.name == "Lisbon below")
    before = staff_client.get(DASH).context["counts"]
    response = staff_client.post(reverse("image_ranking:fallback", args=[poi.pk]), **HTMX)
    assert response.status_code == 200
    html = response.text
    assert "data-fallback-chip" in html and "still needs a photo" in html
    assert "below_threshold for Lisbon below" in html  # it still needs a photo: flag kept
    assert '<dd data-count="fallback">5</dd>' in html  # the counts swapped in say so
    after = staff_client.get(DASH).context["counts"]
    assert after["fallback"] == before["fallback"] + 1
    assert after["missing"] == before["missing"]  # a fallback is no real image
    assert after["has_image"] == before["has_image"]
    assert after["flagged"] == before["flagged"]
    assert PoiRanking.objects.get(poi=poi).validation.aggregate == "below_threshold"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://commons.wikimedia.org/wiki/File:X.jpg", True),
        ("http://example.org/x.jpg", True),
        ("/media/cities/images/pois/x.jpg", True),
        ("//evil.example/x.jpg", False),
        ("/\\evil.example/x.jpg", False),
        ("javascript:alert(1)", False),
        ("data:text/html,x", False),
        ("", False),
    ],
)
def test_links_are_only_http_or_a_local_path(url, shown):
    assert safe_link(url) == (url if shown else "")
    tile = Tile(key="p1", image_url=url, thumb_url=url)
    assert tile.link_url == (url if shown else "")
