"""Store a POI's image safely: everything is prepared in memory before the old file is touched.

Order (design decision 5): download -> decode (`open_image`, first frame) -> EXIF orientation
applied -> resized to fit 800x600 (shrink only, like ImageMagick's `-resize "800x600>"` in the
original `resize_images.sh`) -> encoded -> written under a free name (`poi_image_path()`'s
layout, or a suffix with the POI's id) -> the row switched to it together with its origin and
winner, in one transaction (`outcome.record`) -> the old file deleted if no row references it
(`files`). A failure at any point leaves the POI with its old image; a worker killed mid-way
leaves at most an unreferenced file, which the retry removes.

Output formats keep the family of `resize_images.sh` (which wrote each file back in its own
format): JPEG stays JPEG, PNG stays PNG (transparency kept), GIF stays GIF as a still image
(its first frame); anything else (WebP) becomes JPEG, which every consumer of the dataset
reads.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from PIL import Image

from cities.models import PointOfInterest
from image_ranking.commons.downloads import fetch_image_bytes
from image_ranking.commons.renditions import rendition_or_original
from image_ranking.pipeline import files
from image_ranking.scoring import scene_features
from image_ranking.scoring.imaging import ImageRejected, open_image, to_rgb

logger = logging.getLogger(__name__)

MAX_SIZE = (800, 600)

# EXIF orientation tag values -> the transpose that shows the photo upright.
_ORIENTATION = {
    2: [Image.Transpose.FLIP_LEFT_RIGHT],
    3: [Image.Transpose.ROTATE_180],
    4: [Image.Transpose.FLIP_TOP_BOTTOM],
    5: [Image.Transpose.TRANSPOSE],
    6: [Image.Transpose.ROTATE_270],
    7: [Image.Transpose.TRANSVERSE],
    8: [Image.Transpose.ROTATE_90],
}


class StorageError(Exception):
    """The image could not be prepared or stored; `reason` is shown to curators."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PreparedImage:
    content: bytes
    extension: str
    width: int
    height: int


def max_pixels() -> int:
    return int(settings.IMAGE_MAX_PIXELS)


def max_download_bytes() -> int:
    return int(settings.IMAGE_RANKING_MAX_DOWNLOAD_BYTES)


def _header(data: bytes) -> Image.Image:
    """Parse only the header (format, EXIF); `open_image` has already checked the data."""
    return Image.open(io.BytesIO(data))


def upright(image: Image.Image, data: bytes) -> Image.Image:
    """Apply the EXIF orientation of `data` to its decoded first frame."""
    try:
        orientation = int(_header(data).getexif().get(0x0112, 1) or 1)
    except Exception:
        orientation = 1
    for method in _ORIENTATION.get(orientation, []):
        image = image.transpose(method)
    return image


def prepare_image(data: bytes) -> PreparedImage:
    """Decode, orient, shrink and encode; raises ImageRejected/StorageError, touches nothing."""
    # The winner may be an original: bounded by IMAGE_MAX_PIXELS only, as before.
    frame = open_image(data, max_pixels=max_pixels(), at_most=max(MAX_SIZE), refuse_oversized=False)
    source_format = (_header(data).format or "").upper()
    frame = upright(frame, data)
    has_alpha = frame.mode in {"RGBA", "LA", "PA"} or (
        frame.mode == "P" and "transparency" in frame.info
    )
    if source_format in {"PNG", "GIF"} and has_alpha:
        frame = frame.convert("RGBA")
    else:
        frame = to_rgb(frame)
    if frame.width < 1 or frame.height < 1:
        raise StorageError("the image has no pixels")
    frame.thumbnail(MAX_SIZE, Image.Resampling.LANCZOS)  # shrink only, aspect kept
    buffer = io.BytesIO()
    if source_format == "PNG":
        frame.save(buffer, format="PNG", optimize=True)
        extension = ".png"
    elif source_format == "GIF":
        frame.save(buffer, format="GIF")
        extension = ".gif"
    else:
        frame.save(buffer, format="JPEG", quality=88, optimize=True, progressive=True)
        extension = ".jpg"
    return PreparedImage(buffer.getvalue(), extension, frame.width, frame.height)


def fetch_prepared(url: str) -> PreparedImage:
    """Download (allow-listed origins, size cap) and prepare; touches nothing.

    Raises DownloadError, StorageError."""
    data = fetch_image_bytes(url, max_bytes=max_download_bytes())
    return prepare_bytes(data)


def prepare_bytes(data: bytes) -> PreparedImage:
    try:
        return prepare_image(data)
    except ImageRejected as exc:
        raise StorageError(f"image rejected: {exc}") from exc


def scene_of(prepared: PreparedImage) -> bytes:
    """The scene features (`scoring.scene_features`) of a prepared image, as stored with the POI."""
    return scene_features.features(Image.open(io.BytesIO(prepared.content))).to_bytes()


def winner_url(candidate: Any) -> str:
    """The URL to download a winner from: a standard rendition (robot policy), or the
    original when IMAGE_RANKING_WINNER_WIDTH=0 or the original is not wider than it."""
    width = int(settings.IMAGE_RANKING_WINNER_WIDTH)
    return rendition_or_original(candidate, width, original_if_unrenderable=True)


def write_file(poi: PointOfInterest, prepared: PreparedImage) -> str:
    """Write the prepared image under a name no row references (`files.free_name`); the POI
    is switched to it later, in the transaction of its outcome. The caller holds its claim."""
    storage = poi.image_file.storage
    try:
        return storage.save(
            files.free_name(poi, prepared.extension, storage), ContentFile(prepared.content)
        )
    except OSError as exc:  # disk full, permissions: the old image stays as it was
        raise StorageError(f"could not write the image file: {exc}") from exc


def discard_file(name: str) -> None:
    """Remove a written file no row took (its outcome was refused or failed)."""
    files.delete_if_unreferenced(PointOfInterest._meta.get_field("image_file").storage, name)
