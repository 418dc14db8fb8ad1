"""score_images: every awkward input either scores (as the original pipeline would) or gets a
clear per-file error, and the batch always finishes."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from tests.fakes.images import encode, jpeg_bytes, photo


def png(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **params)
    return buffer.getvalue()


def gif_animation() -> bytes:
    frames = [photo("rocket").convert("P"), Image.new("P", (640, 427), 0)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def run(capsys, *args) -> tuple[int, dict]:
    code = 0
    try:
        call_command("score_images", *args)
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(capsys.readouterr().out)


def test_every_kind_of_input_scores_or_gets_its_own_error(tmp_path, nima_scorer, capsys):
    ramp = (np.indices((300, 400)).sum(axis=0) * 100).astype(np.uint16)
    files = {
        "good.jpg": jpeg_bytes("coffee"),
        "cmyk.jpg": encode(photo("coffee").convert("CMYK")),
        "grey.png": png(photo("rocket").convert("L")),
        "sixteen.png": png(Image.fromarray(ramp)),
        "palette.png": png(photo("chelsea").convert("P"), transparency=0),
        "rgba.png": png(photo("astronaut").convert("RGBA")),
        "animated.gif": gif_animation(),
        "truncated.jpg": jpeg_bytes("rocket")[:3000],
        "empty.jpg": b"",
        "page.jpg": b"<html><body>Not Found</body></html>",
        "bomb.png": png(Image.new("L", (10_000, 8_000))),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    paths = [str(tmp_path / name) for name in files] + [str(tmp_path / "missing.jpg")]

    code, document = run(capsys, "--json", *paths)

    assert code == 1 and document["model"] == "nima"
    results = {r["path"].rsplit("/", 1)[-1]: r for r in document["results"]}
    assert list(results) == [*files, "missing.jpg"]  # one entry per path, in order
    for name in [
        "good.jpg",
        "cmyk.jpg",
        "grey.png",
        "sixteen.png",
        "palette.png",
        "rgba.png",
        "animated.gif",
    ]:
        assert 1 < results[name]["score"] < 10 and results[name]["std"] > 0, name
    assert results["truncated.jpg"]["error"] == "truncated image"
    assert results["empty.jpg"]["error"] == "empty file"
    assert results["page.jpg"]["error"] == "not an image (only JPEG, PNG, WebP and GIF are read)"
    assert results["bomb.png"]["error"].startswith("decompression bomb: 80 MP")
    assert "No such file" in results["missing.jpg"]["error"]
    # The CMYK copy of a photo scores like the photo itself.
    assert results["cmyk.jpg"]["score"] == pytest.approx(results["good.jpg"]["score"], abs=0.3)


def test_all_good_files_exit_zero(tmp_path, nima_scorer, capsys):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes("astronaut"))
    code, document = run(capsys, "--json", str(path))
    assert code == 0 and len(document["results"]) == 1 and "error" not in document["results"][0]
