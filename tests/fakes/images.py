"""Real photos for tests (scikit-image's bundled samples) and degraded copies of them.

Nothing here is synthetic noise: the originals are real photographs shipped by scikit-image,
and the degraded copies are what a careless upload looks like (dark, blurred, badly cropped).
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter
from skimage import data

PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle", "hubble", "cells")


@cache
def _photo_array(name: str) -> np.ndarray:
    loaders = {
        "astronaut": data.astronaut,
        "coffee": data.coffee,
        "chelsea": data.chelsea,
        "rocket": data.rocket,
        "motorcycle": lambda: data.stereo_motorcycle()[0],
        "hubble": data.hubble_deep_field,
        "cells": data.immunohistochemistry,
    }
    return loaders[name]()


def photo(name: str) -> Image.Image:
    """A real colour photo as an RGB Pillow image."""
    return Image.fromarray(_photo_array(name)).convert("RGB")


def all_photos() -> dict[str, Image.Image]:
    return {name: photo(name) for name in PHOTO_NAMES}


def degrade(image: Image.Image, kind: str) -> Image.Image:
    """A clearly worse copy: 'dark' (underexposed), 'dim' (about one stop under), 'washed'
    (washed-out: blacks lifted toward white, as flare or overexposure leaves them), 'haze'
    (low contrast under a light grey veil), 'blur', 'crop' (a corner enlarged to full size)."""
    if kind == "dark":
        return ImageEnhance.Brightness(image).enhance(0.25)
    if kind == "dim":
        return ImageEnhance.Brightness(image).enhance(0.5)
    if kind == "washed":
        return Image.blend(image.convert("RGB"), Image.new("RGB", image.size, (255, 255, 255)), 0.5)
    if kind == "haze":
        return Image.blend(
            image.convert("RGB"), Image.new("RGB", image.size, (190, 195, 200)), 0.55
        )
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(radius=max(image.size) / 60))
    if kind == "crop":
        width, height = image.size
        corner = image.crop((0, 0, width // 3, height // 3))
        return corner.resize((width, height), Image.Resampling.BICUBIC)
    raise ValueError(f"unknown degradation {kind!r}")


def encode(image: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG" and image.mode not in {"RGB", "L", "CMYK"}:
        image = image.convert("RGB")
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}) | params)
    return buffer.getvalue()


def jpeg_bytes(name: str, *, degraded: str | None = None, width: int | None = None) -> bytes:
    """A photo (optionally degraded, optionally scaled to `width`) as JPEG bytes."""
    image = photo(name)
    if degraded:
        image = degrade(image, degraded)
    if width and width != image.width:
        height = round(image.height * width / image.width)
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return encode(image)
