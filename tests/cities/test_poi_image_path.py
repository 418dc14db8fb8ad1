"""poi_image_path keeps the original layout and never leaves the city's image folder."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from django.core.files.base import ContentFile

from cities.models import City, PointOfInterest, poi_image_path

ROOT = PurePosixPath("cities/images/pois")


def make_poi(city_name: str, poi_name: str) -> PointOfInterest:
    return PointOfInterest(city=City(name=city_name), name=poi_name, category="see")


def test_ordinary_names_keep_the_original_layout():
    path = poi_image_path(make_poi("County Dublin", "Harbour Bar"), "photo.JPG")
    assert path == "cities/images/pois/county_dublin/harbour_bar.jpg"


def test_accents_are_kept():
    path = poi_image_path(make_poi("Lisbon", "Café A Brasileira"), "x.png")
    assert path == "cities/images/pois/lisbon/café_a_brasileira.png"


@pytest.mark.parametrize(
    "poi_name",
    [
        "../../../etc/passwd",
        "..",
        ".",
        "a/b/c",
        "back\\slash",
        "nul\x00byte",
        "/absolute",
        "x" * 300,
        "🍕" * 300,
        "🏰 Castle",
        "   ",
        "..hidden",
    ],
)
def test_unsafe_names_stay_inside_the_city_folder(poi_name):
    path = PurePosixPath(poi_image_path(make_poi("Rome", poi_name), "image.jpg"))
    assert path.parent == ROOT / "rome"
    assert ".." not in path.parts
    assert "\x00" not in str(path)
    assert path.name not in {".jpg", "..jpg"} and not path.name.startswith(".")
    assert len(path.name.encode()) <= 200


def test_unsafe_city_name_stays_inside_the_pois_folder():
    path = PurePosixPath(poi_image_path(make_poi("../..", "Colosseum"), "a.jpg"))
    assert path.parent.parent == ROOT
    assert ".." not in path.parts


def test_long_names_that_share_a_prefix_get_different_files():
    first = poi_image_path(make_poi("Rome", "x" * 250 + "first"), "a.jpg")
    second = poi_image_path(make_poi("Rome", "x" * 250 + "second"), "a.jpg")
    assert first != second


@pytest.mark.parametrize("filename", ["image", "image.exe", "image.php", "x.jpg/../../y"])
def test_unexpected_extensions_become_jpg(filename):
    assert poi_image_path(make_poi("Rome", "Colosseum"), filename).endswith("colosseum.jpg")


@pytest.mark.django_db
def test_a_saved_image_lands_at_the_safe_path(media_root):
    city = City.objects.create(name="Rome")
    poi = PointOfInterest.objects.create(city=city, name="../../escape", category="see")
    poi.image_file.save("photo.jpg", ContentFile(b"bytes"), save=True)
    stored = (media_root / poi.image_file.name).resolve()
    assert stored.is_relative_to(media_root / "cities/images/pois/rome")
    assert stored.read_bytes() == b"bytes"
