"""The blur check before scenes.match: near-duplicates by a 64-bit difference hash, blur by the
Laplacian's variance at a fixed width. Kept only as the benches' baseline and to build test
cases (two different photos whose hashes are within 10 bits); the product uses
scoring.scenes and scoring.quality."""

from __future__ import annotations

import numpy as np
from PIL import Image

from image_ranking.scoring.sharpness import BLUR_RATIO, MEASURE_WIDTH, laplacian_ratio

HASH_SIZE = 8  # a 9x8 grey thumbnail gives a 64-bit difference hash
# Two candidates whose hashes differ in at most this many of 64 bits were taken as the same
# scene (blurred copies differ by <= 4 bits, dark ones by <= 13; unrelated photos of a city
# fall within 10 too, which is why it went).
NEAR_DUPLICATE_BITS = 10


def laplacian_variance(image: Image.Image) -> float:
    """Variance of the 4-neighbour Laplacian of the grey image at MEASURE_WIDTH, relative to
    the image's variance."""
    grey = image.convert("L")
    if grey.width != MEASURE_WIDTH:
        height = max(1, round(grey.height * MEASURE_WIDTH / grey.width))
        grey = grey.resize((MEASURE_WIDTH, height), Image.Resampling.BILINEAR)
    return laplacian_ratio(np.asarray(grey, dtype=np.float32))


def difference_hash(image: Image.Image) -> int:
    """A 64-bit perceptual hash: is each pixel of a 9x8 grey thumbnail darker than its right
    neighbour. Coarse on purpose, so blur and exposure barely change it."""
    grey = image.convert("L").resize((HASH_SIZE + 1, HASH_SIZE), Image.Resampling.BILINEAR)
    pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def same_scene(hash_a: int, hash_b: int) -> bool:
    return (hash_a ^ hash_b).bit_count() <= NEAR_DUPLICATE_BITS


def blurred_copies(images: list[Image.Image]) -> list[int | None]:
    """For each image, the index of a near-duplicate candidate it is a blurred copy of (the
    sharpest such one), or None when it is not measurably blurrier than any copy of itself."""
    sharp = [laplacian_variance(i) for i in images]
    hashes = [difference_hash(i) for i in images]
    return blurred_among(sharp, hashes)


def blurred_among(sharp: list[float], hashes: list[int]) -> list[int | None]:
    """blurred_copies on precomputed Laplacian variances and hashes."""
    out: list[int | None] = []
    for i, (value, own_hash) in enumerate(zip(sharp, hashes, strict=True)):
        copies = [j for j, h in enumerate(hashes) if j != i and same_scene(own_hash, h)]
        sharpest = max(copies, key=lambda j: sharp[j], default=None)
        if sharpest is not None and value < BLUR_RATIO * sharp[sharpest]:
            out.append(sharpest)
        else:
            out.append(None)
    return out
