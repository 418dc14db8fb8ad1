"""Safe file names for POI images.

The original project built `cities/images/pois/<city>/<poi>.<ext>` from raw names, so a POI
called `../../settings` could write anywhere. These helpers keep that layout for ordinary
names (lower-cased, spaces to underscores, accents kept) and turn anything that could leave
the folder or break a file system into a harmless single path segment.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

POI_IMAGE_ROOT = "cities/images/pois"
ALLOWED_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp")
DEFAULT_IMAGE_EXTENSION = ".jpg"

# Most file systems allow 255 bytes per name; keep room for the extension and a suffix that
# Django's storage may add to avoid collisions ("_AbC1234").
MAX_SEGMENT_BYTES = 180

_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def safe_segment(name: str, fallback: str = "unnamed") -> str:
    """One path segment that cannot escape its folder and fits any file system."""
    text = unicodedata.normalize("NFC", str(name)).strip().lower().replace(" ", "_")
    text = _UNSAFE_CHARS.sub("_", text)
    text = text.strip(".") or fallback  # no "", ".", ".." and no hidden files
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_SEGMENT_BYTES:
        digest = hashlib.sha256(encoded).hexdigest()[:8]
        clipped = encoded[: MAX_SEGMENT_BYTES - 9].decode("utf-8", errors="ignore")
        text = f"{clipped}-{digest}"
    return text


def safe_extension(filename: str) -> str:
    """The lower-cased image extension of `filename`, or `.jpg` when it has none we accept."""
    base = str(filename).rsplit("/", 1)[-1]
    if "." not in base:
        return DEFAULT_IMAGE_EXTENSION
    ext = "." + base.rsplit(".", 1)[-1].lower()
    return ext if ext in ALLOWED_IMAGE_EXTENSIONS else DEFAULT_IMAGE_EXTENSION


def poi_image_relpath(city_name: str, poi_name: str, filename: str) -> str:
    """`cities/images/pois/<city>/<poi>.<ext>`, always inside that folder."""
    return (
        f"{POI_IMAGE_ROOT}/{safe_segment(city_name, 'city')}/"
        f"{safe_segment(poi_name, 'poi')}{safe_extension(filename)}"
    )


def city_image_relpath(city_name: str, filename: str) -> str:
    """`cities/images/<city>.<ext>`, always inside that folder."""
    return f"cities/images/{safe_segment(city_name, 'city')}{safe_extension(filename)}"
