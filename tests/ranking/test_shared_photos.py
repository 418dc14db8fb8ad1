"""One photo, one place, on the stored rows: another POI's photo is found by its file or by its
scene (a re-encoded, resized copy of it too), a different photo is not, and a row stored by an
older version (features of another format) is still compared by its file."""

from __future__ import annotations

import io

from PIL import Image

from cities.models import PointOfInterest
from image_ranking.models import PoiRanking
from image_ranking.pipeline import shared_photos
from image_ranking.scoring import scene_features
from tests.scoring.scene_set import resized_copy, version


def scene(image: Image.Image) -> bytes:
    return scene_features.features(image).to_bytes()


def reencoded_resized(name: str) -> Image.Image:
    buffer = io.BytesIO()
    resized_copy(version(name)).save(buffer, format="JPEG", quality=70)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def stored_photo(poi, sha1: str, scene_bytes: bytes, title: str = "File:Stored.jpg") -> None:
    PointOfInterest.objects.filter(pk=poi.pk).update(image_file=f"poi_images/{poi.pk}.jpg")
    PoiRanking.objects.create(
        poi=poi, image_origin=PoiRanking.Origin.PIPELINE, image_sha1=sha1, image_title=title,
        image_scene=scene_bytes,
    )  # fmt: skip


def test_a_reencoded_resized_copy_of_a_stored_photo_is_that_pois_photo(make_poi):
    tower, monastery = make_poi("Torre de Belém"), make_poi("Mosteiro dos Jerónimos")
    stored_photo(tower, "a" * 40, scene(version("coffee")))
    make_poi("Castelo")  # a POI without a stored photo is no conflict
    copy = shared_photos.Photo("b" * 40, scene(reencoded_resized("coffee")), "File:Copy.jpg")
    found = shared_photos.conflict(monastery, copy, tie_break=False)
    assert found is not None and found.other_id == tower.pk and not found.keep_here
    different = shared_photos.Photo("c" * 40, scene(version("china")), "File:China.jpg")
    assert shared_photos.conflict(monastery, different) is None
    assert shared_photos.conflict(tower, copy) is None  # its own photo is no conflict


def test_a_row_with_features_of_an_older_version_is_compared_by_its_file(make_poi):
    tower, monastery = make_poi("Torre de Belém"), make_poi("Mosteiro dos Jerónimos")
    stored_photo(tower, "a" * 40, bytes.fromhex("00ff00ff00ff00ff"))  # the old 64-bit hash
    same_scene = shared_photos.Photo("b" * 40, scene(version("coffee")), "File:Other.jpg")
    assert shared_photos.conflict(monastery, same_scene) is None  # the hash says nothing
    same_file = shared_photos.Photo("a" * 40, scene(version("coffee")), "File:Stored.jpg")
    found = shared_photos.conflict(monastery, same_file, tie_break=False)
    assert found is not None and found.other_id == tower.pk
