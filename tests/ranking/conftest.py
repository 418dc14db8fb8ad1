"""Fixtures for the ranking tests: a city and POIs in lists."""

from __future__ import annotations

import pytest

from cities.models import City, PoiList, PointOfInterest

LISBON = (38.7139, -9.1394)


@pytest.fixture
def city(db) -> City:
    return City.objects.create(name="Lisbon", latitude=LISBON[0], longitude=LISBON[1])


@pytest.fixture
def make_poi(city):
    """make_poi(name, coords=LISBON, category="see", in_list=True) -> a POI in a list."""
    poi_list = PoiList.objects.create(title="Sights", city=city)

    def make(name: str, coords=LISBON, category: str = "see", in_list: bool = True):
        lat, lon = coords if coords else (None, None)
        poi = PointOfInterest.objects.create(
            city=city, name=name, category=category, latitude=lat, longitude=lon
        )
        if in_list:
            poi_list.pois.add(poi)
        return poi

    return make
