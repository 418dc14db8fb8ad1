"""Blur, measured so that only copies of one photo are compared.

Why: NIMA scores a 224x224 downscale, where a blurred photo looks almost as sharp as the
original, so a blurred copy sometimes outscores it. The variance of the Laplacian separates blur
well, but only between two versions of the SAME photo: its value depends on the subject (a
sky-heavy facade has far less fine detail than foliage). So quality.assess_copies compares it
only between copies that scenes.match found, on the same part of the scene, and different
photos of a place are left to NIMA alone.
"""

from __future__ import annotations

import numpy as np

MEASURE_WIDTH = 320  # blur is compared at this width, so thumbnails compare fairly
# A candidate with less than this share of a near-duplicate's Laplacian variance is blurred.
BLUR_RATIO = 0.2
BLUR_PENALTY = 1.0  # NIMA points taken off a blurred copy when ranking


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


def ranking_score(score: float, blurred: bool) -> float:
    """The score used to pick the winner: NIMA's, minus a penalty for a blurred copy."""
    return score - BLUR_PENALTY if blurred else score
