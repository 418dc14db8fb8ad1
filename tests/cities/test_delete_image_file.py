"""delete_image_file removes the file and clears the field."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from cities.models import City, PointOfInterest

pytestmark = pytest.mark.django_db


@pytest.fixture
def poi():
    city = City.objects.create(name="Paris")
    return PointOfInterest.objects.create(city=city, name="Louvre", category="see")


def test_removes_file_and_clears_field(poi, media_root):
    poi.image_file.save("louvre.jpg", ContentFile(b"jpeg"), save=True)
    path = media_root / poi.image_file.name
    assert path.is_file()

    poi.delete_image_file()

    assert not path.exists()
    poi.refresh_from_db()
    assert not poi.image_file


def test_a_file_already_gone_still_clears_the_field(poi, media_root):
    poi.image_file.save("louvre.jpg", ContentFile(b"jpeg"), save=True)
    (media_root / poi.image_file.name).unlink()

    poi.delete_image_file()

    poi.refresh_from_db()
    assert not poi.image_file


def test_without_an_image_nothing_happens(poi):
    before = poi.updated_at
    poi.delete_image_file()
    poi.refresh_from_db()
    assert not poi.image_file
    assert poi.updated_at == before


def test_image_url_and_to_dict(poi):
    assert poi.get_image_url() is None
    poi.image_file.save("louvre.jpg", ContentFile(b"jpeg"), save=True)
    assert poi.image_url == "/media/cities/images/pois/paris/louvre.jpg"
    assert poi.get_image_url("https://guide.example/") == (
        "https://guide.example/media/cities/images/pois/paris/louvre.jpg"
    )
    exported = poi.to_dict()
    assert exported["name"] == "Louvre" and exported["image_url"] == poi.image_url


def test_a_file_another_poi_references_is_kept(poi, media_root):
    poi.image_file.save("louvre.jpg", ContentFile(b"jpeg"), save=True)
    twin = PointOfInterest.objects.create(
        city=poi.city, name="Louvre (museum)", category="see", image_file=poi.image_file.name
    )
    path = media_root / poi.image_file.name

    poi.delete_image_file()

    assert path.is_file()  # still twin's image
    twin.refresh_from_db()
    assert (media_root / twin.image_file.name).is_file()
    poi.refresh_from_db()
    assert not poi.image_file
