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
# Pillow's names for image/jpeg, image/png, image/webp and image/gif (commons.answers.PHOTO_MIMES).
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
NOT_AN_IMAGE = "not an image (only JPEG, PNG, WebP and GIF are read)"
# A rendition asked for `at_most` px wide decodes to at most (4 x at_most)^2 pixels
# (`rendition_pixels`).
OVERSIZE_SIDES = 4

# Pillow modes holding more than 8 bits per channel (greyscale only: Pillow has no 16-bit RGB).
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
# Modes whose palette/alpha conversion to RGB goes through RGBA (same pixels, no warning).
_VIA_RGBA_MODES = {"P", "PA", "RGBa", "La"}


class ImageRejected(ValueError):
    """The bytes are not an image we can use; the message is a short reason for a curator."""


def _megapixels(pixels: int, digits: int = 0) -> str:
    return f"{pixels / 1_000_000:.{digits}f} MP"


def open_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    at_most: int | None = None,
    refuse_oversized: bool = True,
) -> Image.Image:
    """Fully decode `data` and return its first frame, mode and orientation untouched.

    The pixel count is checked from the header before any pixel is decoded, so a small file
    claiming a huge canvas (a decompression bomb) costs no memory.

    `at_most` is the width of the rendition the caller asked for. A JPEG more than twice that
    size on both sides is decoded at a reduced scale (libjpeg's DCT scaling, `Image.draft`),
    never below `at_most`: a hostile but legal 7000x7000 thumbnail then costs 1/64 of the
    memory. PNG, WebP and GIF have no reduced decoding in Pillow, so with `refuse_oversized`
    any image that would still decode to more than `rendition_pixels(at_most)` is refused
    before decoding (`ImageRejected`: "7000x7000 px PNG, far larger than the 500 px rendition
    asked for"). `refuse_oversized=False` keeps only the reduced JPEG decoding, for a caller
    that takes any size up to `max_pixels` (the stored winner, which may be an original).
    Images of normal size are decoded exactly as before.
    """
    image = _header(data, max_pixels)
    try:
        animated = bool(getattr(image, "is_animated", False))
        if animated:
            image.seek(0)  # only the first frame is decoded
        width, height = image.size
        if width <= 0 or height <= 0:
            raise ImageRejected("image has no pixels")
        if width * height > max_pixels:
            raise ImageRejected(
                f"decompression bomb: {_megapixels(width * height)} over the "
                f"{_megapixels(max_pixels)} limit"
            )
        if at_most:
            _shrink_or_refuse(image, at_most, refuse_oversized)
        image.load()
        frame = image.copy() if animated else image
    except ImageRejected:
        raise
    except Image.DecompressionBombError:
        raise ImageRejected(
            f"decompression bomb: over the {_megapixels(max_pixels)} limit"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        if "truncated" in str(exc).lower() or isinstance(exc, EOFError):
            raise ImageRejected("truncated image") from None
        raise ImageRejected(f"corrupt image: {exc}") from None
    return frame


def rendition_pixels(at_most: int) -> int:
    """The most pixels a rendition `at_most` px wide may decode to: (4 x at_most) squared.

    Commons renders a thumbnail to the width asked for, so a real one is `at_most` px wide
    (or narrower: the original) and as tall as its aspect makes it. This bound lets through
    any real rendition up to a 1:16 panorama, and any image up to 4x the width on each side.
    At the default 500 px that is 4 MP, 16 MB as RGBA, where a 7000x7000 canvas takes 196 MB
    (and as much again for each conversion to RGB).
    """
    return (OVERSIZE_SIDES * at_most) ** 2


def _header(data: bytes, max_pixels: int) -> Image.Image:
    """Open `data` (header only, no pixel decoded), as one of the ALLOWED_FORMATS."""
    if not data:
        raise ImageRejected("empty file")
    try:
        with warnings.catch_warnings():
            # Our own limit is the one that counts; Pillow's warning is only noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise ImageRejected(NOT_AN_IMAGE) from None
    except Image.DecompressionBombError:
        raise ImageRejected(
            f"decompression bomb: over the {_megapixels(max_pixels)} limit"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"corrupt image header: {exc}") from None


def _shrink_or_refuse(image: Image.Image, at_most: int, refuse_oversized: bool) -> None:
    """Set a JPEG to decode at a reduced scale; refuse what would still decode too large."""
    width, height = image.size
    if image.format == "JPEG" and min(width, height) > 2 * at_most:
        image.draft(image.mode, (at_most, at_most))  # updates image.size
    decoded_width, decoded_height = image.size
    if refuse_oversized and decoded_width * decoded_height > rendition_pixels(at_most):
        raise ImageRejected(
            f"{width}x{height} px {image.format}, far larger than the {at_most} px rendition "
            f"asked for (not decoded: over {_megapixels(rendition_pixels(at_most), 1)})"
        )


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
