"""Which of a POI's candidates is a blurred copy of another, sharper candidate.

Why: NIMA scores a 224x224 downscale, where a blurred photo looks almost as sharp as the
original, so a blurred copy sometimes outscores it. The variance of the Laplacian measured at a
fixed size separates blur well, but only between two versions of the SAME photo: its value
depends on the subject (a sky-heavy facade has far less fine detail than foliage), so across
different scenes it says nothing about focus. So the comparison is made only between
near-duplicates (a small difference hash of the thumbnail; a blurred or darkened copy keeps it),
and different photos of a place are left to NIMA alone.

quality.assess_copies generalises this check (exposure, contrast, enlarged crops, and copies
found by scenes.match however they were cropped or turned, not by hash); blurred_copies and
ranking_score stay for callers that only want the blur check (the benches' baseline), and
quality reuses laplacian_ratio and BLUR_RATIO from here. The difference hash is no same-scene
test (unrelated photos of a city fall within 10 bits): scenes.match is.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

MEASURE_WIDTH = 320  # fixed size, so thumbnails of different widths compare fairly
# A candidate with less than this share of a near-duplicate's Laplacian variance is blurred.
BLUR_RATIO = 0.2
BLUR_PENALTY = 1.0  # NIMA points taken off a blurred copy when ranking
HASH_SIZE = 8  # a 9x8 grey thumbnail gives a 64-bit difference hash
# Two candidates whose hashes differ in at most this many of 64 bits show the same scene.
# Measured (bench/blur_choice.py): blurred copies differ by <= 4 bits, dark ones by <= 13,
# different photos by >= 15.
NEAR_DUPLICATE_BITS = 10


def laplacian_variance(image: Image.Image) -> float:
    """Variance of the 4-neighbour Laplacian of the grey image at MEASURE_WIDTH, relative to
    the image's variance."""
    grey = image.convert("L")
    if grey.width != MEASURE_WIDTH:
        height = max(1, round(grey.height * MEASURE_WIDTH / grey.width))
        grey = grey.resize((MEASURE_WIDTH, height), Image.Resampling.BILINEAR)
    return laplacian_ratio(np.asarray(grey, dtype=np.float32))


def laplacian_ratio(pixels: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of grey `pixels` (0..255), at their own size.

    Divided by the image's own variance, so exposure and contrast do not count as sharpness:
    a dark or hazy photo is NIMA's business, not a blur."""
    if pixels.shape[0] < 3 or pixels.shape[1] < 3:
        return 0.0
    lap = (
        pixels[:-2, 1:-1]
        + pixels[2:, 1:-1]
        + pixels[1:-1, :-2]
        + pixels[1:-1, 2:]
        - 4 * pixels[1:-1, 1:-1]
    )
    return float(lap.var() / (pixels.var() + 1.0))


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


def ranking_score(score: float, blurred: bool) -> float:
    """The score used to pick the winner: NIMA's, minus a penalty for a blurred copy."""
    return score - BLUR_PENALTY if blurred else score
