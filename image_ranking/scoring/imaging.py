"""Decode untrusted image bytes safely and convert them to RGB the way NIMA's pipeline did.

Every thumbnail and original comes from the internet, so decoding is where bad input shows up:
empty or non-image bytes, truncated files, decompression bombs, odd colour modes. Each becomes
an `ImageRejected` with a short human reason instead of a crash in the middle of a batch.

Only the formats the pipeline keeps are decoded (`ALLOWED_FORMATS`, the Pillow names of the
Commons client's PHOTO_MIMES): every other Pillow plugin (TIFF, PSD, BMP, ICO, ...) is attack
surface a photo never needs.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 50_000_000
# Pillow's names for image/jpeg, image/png, image/webp and image/gif (client.PHOTO_MIMES).
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
NOT_AN_IMAGE = "not an image (only JPEG, PNG, WebP and GIF are read)"

# Pillow modes holding more than 8 bits per channel (greyscale only: Pillow has no 16-bit RGB).
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
# Modes whose palette/alpha conversion to RGB goes through RGBA (same pixels, no warning).
_VIA_RGBA_MODES = {"P", "PA", "RGBa", "La"}


class ImageRejected(ValueError):
    """The bytes are not an image we can use; the message is a short reason for a curator."""


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.0f} MP"


def open_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, at_most: int | None = None
) -> Image.Image:
    """Fully decode `data` and return its first frame, mode and orientation untouched.

    The pixel count is checked from the header before any pixel is decoded, so a small file
    claiming a huge canvas (a decompression bomb) costs no memory. With `at_most`, a JPEG
    more than twice that size on both sides is decoded at a reduced scale (libjpeg's DCT
    scaling, `Image.draft`), never below `at_most`: a hostile but legal 7000x7000 thumbnail
    then costs 1/64 of the memory. Images of normal size are decoded exactly as before.
    """
    if not data:
        raise ImageRejected("empty file")
    try:
        with warnings.catch_warnings():
            # Our own limit below is the one that counts; Pillow's warning is only noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise ImageRejected(NOT_AN_IMAGE) from None
    except Image.DecompressionBombError:
        raise ImageRejected(
            f"decompression bomb: over the {_megapixels(max_pixels)} limit"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"corrupt image header: {exc}") from None

    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejected("image has no pixels")
    if width * height > max_pixels:
        raise ImageRejected(
            f"decompression bomb: {_megapixels(width * height)} over the "
            f"{_megapixels(max_pixels)} limit"
        )
    try:
        if at_most and image.format == "JPEG" and min(width, height) > 2 * at_most:
            image.draft(image.mode, (at_most, at_most))
        if getattr(image, "is_animated", False):
            image.seek(0)
        image.load()
        frame = image.copy() if getattr(image, "n_frames", 1) > 1 else image
    except Image.DecompressionBombError:
        raise ImageRejected(
            f"decompression bomb: over the {_megapixels(max_pixels)} limit"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        if "truncated" in str(exc).lower() or isinstance(exc, EOFError):
            raise ImageRejected("truncated image") from None
        raise ImageRejected(f"corrupt image: {exc}") from None
    return frame


def _sixteen_bit_to_l(image: Image.Image) -> Image.Image:
    """Scale 16-bit greyscale (0..65535) to 8 bits.

    Pillow's own `convert("RGB")` clips every value above 255, which turns a 16-bit photo into
    a white sheet; the original pipeline never saw 16-bit input, so we keep the picture.
    """
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "I" and values.size and values.max() <= 255 and values.min() >= 0:
        scaled = values  # already 8-bit values stored in a 32-bit mode
    else:
        scaled = values / 257.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB as the original NIMA pipeline made it: Pillow `convert("RGB")`.

    Greyscale is replicated, alpha is dropped without blending, CMYK uses Pillow's conversion.
    16-bit and 32-bit greyscale are first scaled to 8 bits (see `_sixteen_bit_to_l`), float
    images clipped to 0..255.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    try:
        if mode in _SIXTEEN_BIT_MODES or mode == "I":
            return _sixteen_bit_to_l(image).convert("RGB")
        if mode == "F":
            values = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255)
            return Image.fromarray(values.astype(np.uint8), mode="L").convert("RGB")
        if mode in _VIA_RGBA_MODES:
            return image.convert("RGBA").convert("RGB")
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageRejected(f"unsupported colour mode {mode}: {exc}") from None
