"""Untrusted bytes: every bad file gets a short reason, every odd mode becomes a sane RGB."""

from __future__ import annotations

import contextlib
import io
import time

import numpy as np
import pytest
from PIL import Image

from image_ranking.scoring.imaging import ImageRejected, open_image, to_rgb
from tests.fakes.commons_server import oversized_image
from tests.fakes.images import encode, jpeg_bytes, photo


def png(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **params)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"<html>502 Bad Gateway</html>", "not an image"),
        (jpeg_bytes("coffee")[:5000], "truncated image"),
        (png(photo("coffee"))[:20000], "truncated image"),
    ],
    ids=["empty", "html", "truncated-jpeg", "truncated-png"],
)
def test_bad_bytes_are_rejected_with_a_reason(data, reason):
    with pytest.raises(ImageRejected, match=reason):
        open_image(data)


def test_decompression_bomb_is_refused_from_the_header_before_decoding():
    bomb = png(Image.new("L", (12_000, 10_000)))  # 120 MP of zeros compress to ~100 KB
    assert len(bomb) < 200_000
    started = time.perf_counter()
    with pytest.raises(ImageRejected, match=r"decompression bomb: 120 MP over the 50 MP limit"):
        open_image(bomb)
    assert time.perf_counter() - started < 0.5  # nothing was decoded
    with pytest.raises(ImageRejected, match="decompression bomb"):
        open_image(jpeg_bytes("coffee"), max_pixels=100_000)


def test_a_good_jpeg_is_fully_decoded_and_left_in_its_mode():
    image = open_image(jpeg_bytes("coffee"))
    assert image.size == (600, 400) and image.mode == "RGB"
    assert np.asarray(image).mean() > 20


def test_animated_gif_gives_its_first_frame():
    first = photo("coffee").convert("P")
    second = Image.new("P", first.size, 0)
    buffer = io.BytesIO()
    first.save(buffer, "GIF", save_all=True, append_images=[second], duration=100)
    image = open_image(buffer.getvalue())
    assert getattr(image, "n_frames", 1) == 1
    assert np.asarray(to_rgb(image)).std() > 10  # the photo, not the blank second frame


def test_cmyk_jpeg_converts_to_similar_rgb():
    original = photo("coffee")
    image = open_image(encode(original.convert("CMYK")))
    assert image.mode == "CMYK"
    rgb = np.asarray(to_rgb(image), dtype=float)
    assert np.abs(rgb - np.asarray(original, dtype=float)).mean() < 8


def test_sixteen_bit_greyscale_is_scaled_not_clipped_to_white():
    ramp = np.linspace(0, 65535, 256 * 64).reshape(64, 256).astype(np.uint16)
    image = open_image(png(Image.fromarray(ramp)))
    assert image.mode.startswith("I")
    rgb = np.asarray(to_rgb(image))
    assert rgb.shape == (64, 256, 3)
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[-1, -1].tolist() == [255, 255, 255]
    assert 120 < rgb.mean() < 135  # Pillow's plain convert would give almost all 255


def test_greyscale_is_replicated_and_alpha_dropped_without_blending():
    grey = to_rgb(photo("rocket").convert("L"))
    channels = np.asarray(grey)
    assert (channels[..., 0] == channels[..., 1]).all() and (
        channels[..., 1] == channels[..., 2]
    ).all()

    rgba = Image.new("RGBA", (4, 4), (200, 30, 40, 0))  # fully transparent red
    assert to_rgb(rgba).getpixel((0, 0)) == (200, 30, 40)
    la = Image.new("LA", (4, 4), (90, 0))
    assert to_rgb(la).getpixel((0, 0)) == (90, 90, 90)


def test_palette_with_transparency_keeps_its_colours():
    palette = photo("coffee").convert("P")
    image = open_image(png(palette, transparency=0))
    assert image.mode == "P" and "transparency" in image.info
    assert np.array_equal(np.asarray(to_rgb(image)), np.asarray(palette.convert("RGB")))


def encoded(format_name: str) -> bytes:
    buffer = io.BytesIO()
    photo("coffee").save(buffer, format_name)
    return buffer.getvalue()


def psd_bytes(width: int = 4, height: int = 3) -> bytes:
    """A minimal Photoshop file: greyscale, one 8-bit channel, raw pixels."""
    header = b"8BPS" + (1).to_bytes(2, "big") + bytes(6)
    header += (1).to_bytes(2, "big") + height.to_bytes(4, "big") + width.to_bytes(4, "big")
    header += (8).to_bytes(2, "big") + (1).to_bytes(2, "big")  # depth 8, mode greyscale
    sections = bytes(4) * 3  # empty colour mode data, image resources, layer info
    return header + sections + (0).to_bytes(2, "big") + bytes(range(width * height))


@pytest.mark.parametrize(
    "data",
    [encoded("TIFF"), encoded("BMP"), encoded("PPM"), encoded("ICO"), psd_bytes()],
    ids=["tiff", "bmp", "ppm", "ico", "psd"],
)
def test_formats_the_pipeline_does_not_keep_are_never_decoded(data):
    assert Image.open(io.BytesIO(data)).size  # Pillow itself would read them
    with pytest.raises(
        ImageRejected, match=r"not an image \(only JPEG, PNG, WebP and GIF are read\)"
    ):
        open_image(data)


@pytest.mark.parametrize("format_name", ["JPEG", "PNG", "WEBP", "GIF"])
def test_the_kept_formats_decode(format_name):
    assert open_image(encoded(format_name)).size == (600, 400)


def test_allowed_formats_are_the_mime_types_the_client_keeps():
    from image_ranking.commons.answers import PHOTO_MIMES
    from image_ranking.scoring.imaging import ALLOWED_FORMATS

    assert {Image.MIME[name] for name in ALLOWED_FORMATS} == PHOTO_MIMES


def test_a_huge_jpeg_is_decoded_at_a_reduced_scale_never_below_what_is_asked():
    import io

    from PIL import Image

    from image_ranking.scoring.imaging import open_image

    buffer = io.BytesIO()
    Image.new("RGB", (7000, 7000), (120, 90, 60)).save(buffer, format="JPEG", quality=40)
    data = buffer.getvalue()
    reduced = open_image(data, at_most=500)
    assert min(reduced.size) >= 500 and max(reduced.size) <= 1000  # 1/8: 875 px
    assert open_image(data).size == (7000, 7000)  # without `at_most`, as before


# --- bounds on thumbnails of every format ----------------------------------------------------
@pytest.fixture
def no_decoding(monkeypatch):
    """`with no_decoding():` any pixel decoded fails the test, which proves that a refusal
    came from the header alone."""
    from PIL import ImageFile, WebPImagePlugin

    def decoded(image, *args, **kwargs):
        raise AssertionError(f"{image.format} {image.size} was decoded")

    @contextlib.contextmanager
    def forbidden():
        with monkeypatch.context() as patch:
            patch.setattr(ImageFile.ImageFile, "load", decoded)
            patch.setattr(WebPImagePlugin.WebPImageFile, "load", decoded)
            yield

    return forbidden


@pytest.mark.parametrize("format_name", ["PNG", "WEBP", "GIF"])
def test_an_oversized_thumbnail_without_reduced_decoding_is_refused_before_decoding(
    format_name, no_decoding
):
    data = oversized_image(format_name, side=3000)  # 9 MP, over the 4 MP of a 500px rendition
    with no_decoding(), pytest.raises(ImageRejected) as refused:
        open_image(data, at_most=500)
    assert str(refused.value) == (
        f"3000x3000 px {format_name}, far larger than the 500 px rendition asked for "
        "(not decoded: over 4.0 MP)"
    )


def test_a_jpeg_still_too_large_at_its_smallest_scale_is_refused(no_decoding):
    data = encode(photo("rocket").resize((500, 20_000)), "JPEG")  # too narrow to shrink
    with (
        no_decoding(),
        pytest.raises(ImageRejected, match=r"500x20000 px JPEG, far larger than the 500 px"),
    ):
        open_image(data, at_most=500)


def test_a_real_rendition_of_a_tall_panorama_is_decoded_one_row_more_is_not():
    """(4 x 500)^2 = 4 MP: a 500px rendition of a 1:16 panorama, and no more."""
    tallest = photo("rocket").resize((500, 8000))
    assert open_image(png(tallest), at_most=500).size == (500, 8000)
    with pytest.raises(ImageRejected, match="500x8001 px PNG, far larger"):
        open_image(png(tallest.resize((500, 8001))), at_most=500)


def test_the_stored_winner_keeps_any_size_up_to_max_pixels():
    """An original winner is bounded by IMAGE_MAX_PIXELS only: never refused as oversized."""
    from image_ranking.pipeline.storage import prepare_image

    original = oversized_image("PNG", side=3000)
    assert open_image(original, at_most=800, refuse_oversized=False).size == (3000, 3000)
    prepared = prepare_image(original)
    assert (prepared.width, prepared.height, prepared.extension) == (600, 600, ".png")
