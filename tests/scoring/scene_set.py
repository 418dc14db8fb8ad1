"""Every real photograph the installed packages ship, and copies of them made as careless
re-uploads make them: crops from 90% down to 25% of the frame turned by up to 10 degrees either
way and enlarged back to full size, re-encoded resized copies, and dark, washed-out, hazy and
blurred versions. The same-scene test (scoring/scenes.py) and the damage ranking are judged on
these, in tests and in bench/scenes.py.

Sources: scikit-image's sample photos, scikit-learn's two sample photos, PyWavelets' aerial and
stairs photos, matplotlib's portrait of Grace Hopper (all dev requirements), and the NIMA test
images in ../shared/data/nima_test_images when present (read from there, never copied). Drawings,
synthetic charts and 25-pixel faces are left out: they are not photographs.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from PIL import Image
from skimage import data

from tests.fakes.images import degrade
from tests.scoring import quality_set
from tests.scoring.quality_set import thumbnail

SKIMAGE = {
    "astronaut": data.astronaut,
    "camera": data.camera,
    "coffee": data.coffee,
    "chelsea": data.chelsea,
    "rocket": data.rocket,
    "motorcycle": lambda: data.stereo_motorcycle()[0],
    "motorcycle-right": lambda: data.stereo_motorcycle()[1],
    "hubble": data.hubble_deep_field,
    "cells": data.immunohistochemistry,
    "coins": data.coins,
    "moon": data.moon,
    "page": data.page,
    "text": data.text,
    "retina": data.retina,
    "brick": data.brick,
    "grass": data.grass,
    "gravel": data.gravel,
    "clock": data.clock,
    "cell": data.cell,
}


def _sklearn(index: int):
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_images

        return load_sample_images().images[index]

    return load


def _pywt(name: str):
    def load() -> np.ndarray:
        import pywt.data

        return getattr(pywt.data, name)().clip(0, 255).astype(np.uint8)

    return load


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        return np.asarray(image.convert("RGB"))


LOADERS = SKIMAGE | {
    "china": _sklearn(0),
    "flower": _sklearn(1),
    "aero": _pywt("aero"),
    "ascent": _pywt("ascent"),
    "grace-hopper": _grace_hopper,
}
# The other half of a stereo pair: the same place from a step aside, a different photo.
STEP_ASIDE = {"motorcycle-right": "motorcycle"}


def photo_names() -> list[str]:
    return list(LOADERS) + quality_set.nima_names()


@cache
def original(name: str) -> Image.Image:
    if name.startswith("nima/"):
        return quality_set.original(name)
    return Image.fromarray(LOADERS[name]()).convert("RGB")


# Crops: share of the frame's width and height kept, and the turn (degrees) applied.
CROP_SHARES = (0.9, 0.75, 0.6, 0.5, 0.4, 0.33, 0.25)
TURNS = (0.0, 3.0, -6.0, 10.0, -10.0)
EXPOSURES = ("dark", "dim", "washed", "haze", "blur")  # tests.fakes.images.degrade


def turned_crop(image: Image.Image, share: float, turn: float, spot: int = 0) -> Image.Image:
    """A box of `share` of the frame, tilted by `turn` degrees (counter-clockwise), cut from
    the photo and enlarged back to the photo's size: what straightening a tilted shot and
    cropping it leaves. The box sits in one of five spots (corners and centre, by `spot`) as
    far out as it fits; a box too large to fit turned is turned by the most that fits."""
    w, h = image.size
    bw, bh = share * w, share * h
    turn = _fitting_turn(w, h, bw, bh, turn)
    c, s = abs(math.cos(math.radians(turn))), abs(math.sin(math.radians(turn)))
    # half the extent of the turned box, and how far its centre may move
    ex, ey = (bw * c + bh * s) / 2, (bw * s + bh * c) / 2
    fx, fy = ((-1, -1), (1, -1), (0, 0), (-1, 1), (1, 1))[spot % 5]
    cx = w / 2 + fx * max(0.0, w / 2 - ex - 1)
    cy = h / 2 + fy * max(0.0, h / 2 - ey - 1)
    # output pixel (u, v) of the box -> the photo's pixel: rotate about the box centre
    rad = math.radians(turn)
    a, b = math.cos(rad) * bw / w, math.sin(rad) * bh / h
    d, e = -math.sin(rad) * bw / w, math.cos(rad) * bh / h
    x0 = cx - a * w / 2 - b * h / 2
    y0 = cy - d * w / 2 - e * h / 2
    return image.transform((w, h), Image.AFFINE, (a, b, x0, d, e, y0), Image.Resampling.BICUBIC)


def _fitting_turn(w: float, h: float, bw: float, bh: float, turn: float) -> float:
    """`turn`, or the largest turn of the same sign under it at which the box still fits."""
    for step in range(int(abs(turn) * 10), -1, -1):
        angle = math.radians(step / 10)
        c, s = math.cos(angle), math.sin(angle)
        if bw * c + bh * s <= w - 2 and bw * s + bh * c <= h - 2:
            return math.copysign(step / 10, turn)
    return 0.0


def resized_copy(image: Image.Image) -> Image.Image:
    """A re-upload: shrunk to 70% and re-encoded (then served at 500 px like any file)."""
    w, h = image.size
    return image.resize((round(0.7 * w), round(0.7 * h)), Image.Resampling.LANCZOS)


def copies(name: str) -> dict[str, tuple[Image.Image, dict]]:
    """Every copy of one photo as the pipeline sees it (500 px JPEG), with what was done:
    {label: (thumbnail, {"share": s, "turn": t} or {})}."""
    image = original(name)
    out: dict[str, tuple[Image.Image, dict]] = {}
    for k, share in enumerate(CROP_SHARES):
        for j, turn in enumerate(TURNS):
            crop = turned_crop(image, share, turn, spot=k + j)
            actual = _fitting_turn(*image.size, share * image.width, share * image.height, turn)
            out[f"crop {share:.2f} turn {turn:+.0f}"] = (
                thumbnail(crop),
                {"share": share, "turn": actual},
            )
    for kind in EXPOSURES:
        out[kind] = (thumbnail(degrade(image, kind)), {})
    out["resized"] = (thumbnail(resized_copy(image), 400), {"share": 1.0, "turn": 0.0})
    return out


@cache
def version(name: str) -> Image.Image:
    """The photo as the pipeline sees it: its 500 px JPEG thumbnail."""
    return thumbnail(original(name))
