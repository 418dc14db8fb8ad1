"""Deterministic inputs of different kinds for the reference check (same on every machine).

Only lossless sources (scikit-image's PNG photos, Pillow filters, a seeded generator), so the
224x224 arrays are bit-identical everywhere; their SHA-256 is stored with the expected values.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.fakes.images import degrade, photo


def _noise() -> Image.Image:
    rng = np.random.default_rng(20240601)
    return Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))


def _with_alpha() -> Image.Image:
    rgba = photo("chelsea").convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    return rgba


def reference_inputs() -> dict[str, Image.Image]:
    """Name -> image in its original mode (the scorer converts and resizes)."""
    return {
        "astronaut": photo("astronaut"),
        "coffee": photo("coffee"),
        "rocket": photo("rocket"),
        "motorcycle": photo("motorcycle"),
        "coffee_dark": degrade(photo("coffee"), "dark"),
        "astronaut_blur": degrade(photo("astronaut"), "blur"),
        "rocket_greyscale": photo("rocket").convert("L"),
        "chelsea_rgba": _with_alpha(),
        "uniform_grey": Image.new("RGB", (330, 220), (128, 128, 128)),
        "noise": _noise(),
    }
