"""The blur check on real photos: a blurred copy loses to its sharp original, while a sharp
photo of a smooth scene is never called blurred next to a different, more detailed photo."""

from __future__ import annotations

import io
from itertools import combinations

import pytest
from PIL import Image

from image_ranking.scoring import sharpness
from tests.fakes.images import PHOTO_NAMES, jpeg_bytes

DEGRADATIONS = ("dark", "blur", "crop")


def thumb(name: str, degraded: str | None = None) -> Image.Image:
    """The 500px JPEG rendition the pipeline scores."""
    return Image.open(io.BytesIO(jpeg_bytes(name, degraded=degraded, width=500))).convert("RGB")


def test_a_sharp_smooth_photo_is_not_blurred_next_to_a_detailed_different_one():
    smooth, detailed = thumb("astronaut"), thumb("hubble")
    # The Laplacian alone would call the astronaut blurred: far under 20% of the hubble photo.
    ratio = sharpness.laplacian_variance(smooth) / sharpness.laplacian_variance(detailed)
    assert ratio < sharpness.BLUR_RATIO
    assert sharpness.blurred_copies([smooth, detailed]) == [None, None]


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_among_mixed_scenes_only_the_blurred_copy_is_marked(name):
    others = [n for n in PHOTO_NAMES if n != name][:2]
    images = [thumb(name)] + [thumb(name, d) for d in DEGRADATIONS] + [thumb(n) for n in others]
    copies = sharpness.blurred_copies(images)
    blur_index = 1 + DEGRADATIONS.index("blur")
    assert copies[blur_index] in {0, 1}  # a copy of the original (or its equally sharp dark copy)
    assert [c for i, c in enumerate(copies) if i != blur_index] == [None] * (len(images) - 1)


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_blurred_and_dark_copies_stay_near_duplicates_of_their_original(name):
    original = sharpness.difference_hash(thumb(name))
    for kind in ("blur", "dark"):
        assert sharpness.same_scene(original, sharpness.difference_hash(thumb(name, kind))), kind


def test_different_photos_are_never_near_duplicates():
    hashes = {n: sharpness.difference_hash(thumb(n)) for n in PHOTO_NAMES}
    for a, b in combinations(PHOTO_NAMES, 2):
        assert not sharpness.same_scene(hashes[a], hashes[b]), (a, b)


def test_only_a_blurred_copy_loses_the_penalty():
    assert sharpness.ranking_score(5.0, blurred=True) == 5.0 - sharpness.BLUR_PENALTY
    assert sharpness.ranking_score(5.0, blurred=False) == 5.0


def test_a_lone_or_unreadably_small_image_is_never_blurred():
    tiny = thumb("coffee").resize((2, 2))
    assert sharpness.blurred_copies([thumb("coffee", "blur")]) == [None]
    assert sharpness.blurred_copies([tiny, tiny]) == [None, None]
