"""The LAION path end to end: the real published head (converted without PyTorch) and a small
CLIP-shaped encoder generated here, installed and scored exactly as the real weights would be."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from image_ranking.scoring import get_scorer, install, laion_onnx
from image_ranking.scoring.laion import CLIP_MEAN, CLIP_STD, preprocess
from image_ranking.scoring.sources import sha256_file
from tests.fakes.images import degrade, photo
from tests.scoring.conftest import LAION_HEAD

needs_head = pytest.mark.skipif(
    not LAION_HEAD.is_file(),
    reason=f"needs the LAION head checkpoint (LAION_HEAD_FILE={LAION_HEAD})",
)


def tiny_encoder(path: Path, *, seed: int = 7, dim: int = 768) -> np.ndarray:
    """A CLIP-shaped encoder: pixel_values [N,3,224,224] -> image_embeds [N,dim] (pool + Gemm)."""
    weight = np.random.default_rng(seed).normal(0, 1, (192, dim)).astype(np.float32)
    nodes = [
        helper.make_node(
            "AveragePool", ["pixel_values"], ["pooled"], kernel_shape=[28, 28], strides=[28, 28]
        ),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "W"], ["image_embeds"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_clip_vision",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["batch", dim])],
        initializer=[numpy_helper.from_array(weight, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return weight


def numpy_encoder(weight: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    pooled = pixels.reshape(len(pixels), 3, 8, 28, 8, 28).mean(axis=(3, 5))
    return pooled.reshape(len(pixels), -1).astype(np.float64) @ weight


def numpy_head(state: dict, embedding: np.ndarray) -> np.ndarray:
    x = embedding
    for layer in laion_onnx.HEAD_LAYERS:
        x = x @ state[f"{layer}.weight"].T.astype(np.float64) + state[f"{layer}.bias"]
    return x[:, 0]


@needs_head
def test_head_converted_without_pytorch_matches_the_checkpoint_maths(tmp_path):
    import onnxruntime as ort

    state = laion_onnx.read_state_dict(LAION_HEAD)
    assert [state[f"{k}.weight"].shape for k in laion_onnx.HEAD_LAYERS] == laion_onnx.HEAD_SHAPES
    laion_onnx.convert_head(LAION_HEAD, tmp_path / "head.onnx")
    session = ort.InferenceSession(str(tmp_path / "head.onnx"), providers=["CPUExecutionProvider"])
    embeddings = np.random.default_rng(3).normal(size=(9, 768)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    (onnx_scores,) = session.run(None, {"embedding": embeddings})
    np.testing.assert_allclose(onnx_scores[:, 0], numpy_head(state, embeddings), atol=1e-4)


@needs_head
def test_install_from_files_then_score_like_the_numpy_pipeline(
    tmp_path, settings, fresh_registry, capsys
):
    settings.SCORING_MODEL_DIR = tmp_path / "models"
    weight = tiny_encoder(tmp_path / "encoder.onnx")
    call_command(
        "install_scoring_model", "--model", "laion",
        "--from-file", str(tmp_path / "encoder.onnx"), "--head-file", str(LAION_HEAD),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "recorded the encoder's SHA-256" in out and "Installed laion" in out
    record = tmp_path / "models" / "laion" / "encoder.sha256"
    assert record.read_text().strip() == sha256_file(tmp_path / "encoder.onnx")

    scorer = get_scorer("laion")
    images = [photo("coffee"), degrade(photo("coffee"), "dark"), photo("rocket").convert("L")]
    results = scorer.score(images)
    pixels = np.stack([preprocess(image) for image in images])
    raw = numpy_encoder(weight, pixels)
    normalised = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    expected = numpy_head(laion_onnx.read_state_dict(LAION_HEAD), normalised)
    assert [r.std for r in results] == [None, None, None]
    np.testing.assert_allclose([r.score for r in results], expected, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(scorer.embeddings(images), axis=1), 1.0, atol=1e-5)


@needs_head
def test_a_different_encoder_later_is_refused_unless_its_checksum_is_given(tmp_path):
    root = tmp_path / "models"
    tiny_encoder(tmp_path / "first.onnx", seed=1)
    install.install_laion(root, encoder_file=tmp_path / "first.onnx", head_file=LAION_HEAD)
    tiny_encoder(tmp_path / "second.onnx", seed=2)
    with pytest.raises(install.InstallError, match="SHA-256 mismatch"):
        install.install_laion(
            root, encoder_file=tmp_path / "second.onnx", head_file=LAION_HEAD, force=True
        )
    manifest = (root / "laion" / "manifest.json").read_text()
    assert sha256_file(tmp_path / "first.onnx") in manifest  # the old install is intact
    with pytest.raises(install.InstallError, match="differs from the checksum recorded"):
        install.install_laion(
            root,
            encoder_file=tmp_path / "second.onnx",
            head_file=LAION_HEAD,
            encoder_sha256=sha256_file(tmp_path / "second.onnx"),
            force=True,
        )


@needs_head
def test_wrong_user_checksum_or_wrong_shape_caches_nothing(tmp_path):
    root = tmp_path / "models"
    tiny_encoder(tmp_path / "enc.onnx")
    with pytest.raises(install.InstallError, match="SHA-256 mismatch"):
        install.install_laion(
            root, encoder_file=tmp_path / "enc.onnx", head_file=LAION_HEAD, encoder_sha256="0" * 64
        )
    tiny_encoder(tmp_path / "small.onnx", dim=512)
    with pytest.raises(install.InstallError, match=r"no \[N, 768\] image embedding output"):
        install.install_laion(root, encoder_file=tmp_path / "small.onnx", head_file=LAION_HEAD)
    assert not (root / "laion").exists()


@needs_head
def test_encoder_is_downloaded_from_the_configured_url(tmp_path, file_server, settings, capsys):
    settings.SCORING_MODEL_DIR = tmp_path / "models"
    with pytest.raises(CommandError, match=rf"{file_server.url}/clip.onnx: HTTP 404"):
        call_command(
            "install_scoring_model", "--model", "laion", "--head-file", str(LAION_HEAD),
            "--encoder-url", f"{file_server.url}/clip.onnx",
        )  # fmt: skip
    tiny_encoder(tmp_path / "enc.onnx")
    file_server.files["/clip.onnx"] = (tmp_path / "enc.onnx").read_bytes()
    settings.SCORING_LAION_ENCODER_URL = f"{file_server.url}/clip.onnx"
    call_command("install_scoring_model", "--model", "laion", "--head-file", str(LAION_HEAD))
    assert f"Installed laion from {file_server.url}/clip.onnx" in capsys.readouterr().out


def test_checkpoint_with_foreign_globals_is_refused_without_running_them(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"layers.0.weight": Evil()}, protocol=2))
    (tmp_path / "evil.pth").write_bytes(buffer.getvalue())
    with pytest.raises(laion_onnx.ConversionError, match=r"refers to \w+\.print"):
        laion_onnx.read_state_dict(tmp_path / "evil.pth")


def test_clip_preprocessing_resizes_the_short_side_and_centre_crops():
    image = Image.new("RGB", (600, 400), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 84, 400))  # a blue band cropped away by the centre crop
    pixels = preprocess(image)
    assert pixels.shape == (3, 224, 224) and pixels.dtype == np.float32
    red = (np.array([1.0, 0.0, 0.0], dtype=np.float32) - CLIP_MEAN) / CLIP_STD
    np.testing.assert_allclose(pixels[:, 112, 5], red, atol=0.05)
    np.testing.assert_allclose(pixels[:, 112, 200], red, atol=1e-5)
