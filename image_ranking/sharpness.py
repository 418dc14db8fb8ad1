"""Sharpness of a photo relative to its POI's other candidates.

Why: NIMA scores a 224x224 downscale, where a blurred photo looks almost as sharp as the
original, so a blurred copy sometimes outscores it. The variance of the Laplacian measured on
the same thumbnail at a fixed size separates blur well, but its absolute value depends on the
subject (sky vs. facade), so it is only compared among one POI's candidates: a candidate far
blurrier than the POI's sharpest one is pushed below it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

MEASURE_WIDTH = 320  # fixed size, so thumbnails of different widths compare fairly
# A candidate with less than this share of the POI's best Laplacian variance counts as blurred.
BLUR_RATIO = 0.2
BLUR_PENALTY = 1.0  # NIMA points taken off a blurred candidate when ranking


def laplacian_variance(image: Image.Image) -> float:
    """Variance of the 4-neighbour Laplacian of the grey image at MEASURE_WIDTH, relative to
    the image's variance."""
    grey = image.convert("L")
    if grey.width != MEASURE_WIDTH:
        height = max(1, round(grey.height * MEASURE_WIDTH / grey.width))
        grey = grey.resize((MEASURE_WIDTH, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(grey, dtype=np.float32)
    if pixels.shape[0] < 3 or pixels.shape[1] < 3:
        return 0.0
    lap = (
        pixels[:-2, 1:-1]
        + pixels[2:, 1:-1]
        + pixels[1:-1, :-2]
        + pixels[1:-1, 2:]
        - 4 * pixels[1:-1, 1:-1]
    )
    # Divided by the image's own variance, so exposure and contrast do not count as sharpness:
    # a dark or hazy photo is NIMA's business, not a blur.
    return float(lap.var() / (pixels.var() + 1.0))


def relative_sharpness(values: list[float | None]) -> list[float | None]:
    """Each value divided by the largest of the POI (1.0 = the sharpest candidate)."""
    known = [v for v in values if v is not None]
    best = max(known, default=0.0)
    if best <= 0:
        return [None if v is None else 1.0 for v in values]
    return [None if v is None else v / best for v in values]


def ranking_score(score: float, relative: float | None) -> float:
    """The score used to pick the winner: NIMA's, minus a penalty for a clearly blurred one."""
    if relative is not None and relative < BLUR_RATIO:
        return score - BLUR_PENALTY
    return score
