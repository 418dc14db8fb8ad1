"""The real photos the technical-quality check is judged on, as the pipeline sees them.

scikit-image's sample photos, plus the NIMA test images in ../shared/data/nima_test_images
when present (read from there, never copied), each thumbnailed like Commons does (LANCZOS to
500 px, JPEG). "Different photos of a place" are real too: the other half of scikit-image's
stereo pair (the same scene from a step aside) and close-ups cut from a larger original at its
full resolution (a real detail shot, not an enlargement).
"""

from __future__ import annotations

import io
import os
from functools import cache
from pathlib import Path

from PIL import Image
from skimage import data

from tests.fakes.images import PHOTO_NAMES, degrade, photo

# idealo's NIMA test images, used when present (not in this repository).
SHARED_IMAGES = Path(
    os.environ.get(
        "NIMA_TEST_IMAGES_DIR",
        Path(__file__).resolve().parents[3] / "shared" / "data" / "nima_test_images",
    )
)
WIDTH = 500
# The damaged copies, and the kinds the check must name for them.
DAMAGES = {
    "dark": {"dark"},
    "dim": {"dark"},
    "washed": {"washed-out"},
    "haze": {"washed-out", "low-contrast"},
    "blur": {"blurred"},
    "crop": {"enlarged crop"},
}


def thumbnail(image: Image.Image, width: int = WIDTH) -> Image.Image:
    """What Commons serves at `width` (never wider than the original), decoded from JPEG."""
    if image.width > width:
        image = image.resize(
            (width, max(1, round(image.height * width / image.width))),
            Image.Resampling.LANCZOS,
        )
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=85)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def nima_names() -> list[str]:
    """The NIMA test images, when present, as "nima/<stem>" (`original` reads them)."""
    if not SHARED_IMAGES.is_dir():
        return []
    return [f"nima/{p.stem}" for p in sorted(SHARED_IMAGES.glob("*.jpg"))]


def photo_names() -> list[str]:
    return list(PHOTO_NAMES) + nima_names()


@cache
def original(name: str) -> Image.Image:
    if name.startswith("nima/"):
        with Image.open(SHARED_IMAGES / f"{name[5:]}.jpg") as image:
            return image.convert("RGB")
    return photo(name)


@cache
def version(name: str, kind: str = "original") -> Image.Image:
    """The 500 px thumbnail of a photo or of one of its damaged copies."""
    image = original(name)
    return thumbnail(image if kind == "original" else degrade(image, kind))


def other_views() -> dict[str, list[Image.Image]]:
    """Different photos of one place, each set as a POI would get them: none is damaged."""
    left, right = (Image.fromarray(a) for a in data.stereo_motorcycle()[:2])
    hubble, motorcycle = photo("hubble"), photo("motorcycle")
    return {
        "stereo pair": [thumbnail(left), thumbnail(right)],
        "hubble close-up": [thumbnail(hubble), thumbnail(hubble.crop((500, 0, 1000, 436)))],
        "motorcycle close-up": [
            thumbnail(motorcycle, 330),
            thumbnail(motorcycle.crop((0, 0, 370, 250))),
            thumbnail(motorcycle.crop((300, 200, 741, 500))),
        ],
    }
