"""LAION aesthetic predictor: CLIP ViT-L/14 image embedding (ONNX) + the MLP head (ONNX)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from image_ranking.scoring.imaging import to_rgb

from . import cache
from .base import Scorer, ScoreResult, ScoringModelMissing, load_session
from .laion_onnx import encoder_output_name

CLIP_SIZE = 224
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def preprocess(image: Image.Image) -> np.ndarray:
    """CLIP's transform: short side to 224 (bicubic), centre crop 224, 0..1, mean/std; CHW."""
    rgb = to_rgb(image)
    width, height = rgb.size
    # torchvision Resize(224): the short side becomes 224, the long side is truncated.
    short, long = min(width, height), max(width, height)
    other = int(CLIP_SIZE * long / short)
    size = (CLIP_SIZE, other) if width <= height else (other, CLIP_SIZE)
    rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    left = round((size[0] - CLIP_SIZE) / 2.0)
    top = round((size[1] - CLIP_SIZE) / 2.0)
    rgb = rgb.crop((left, top, left + CLIP_SIZE, top + CLIP_SIZE))
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0
    return ((pixels - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1)


class LaionScorer(Scorer):
    name = "laion"

    def __init__(self, directory: Path) -> None:
        found = cache.problems(directory, verify_large=False)
        if found:
            raise ScoringModelMissing(self.name, "; ".join(found))
        self.encoder = load_session(self.name, directory / "encoder.onnx")
        self.head = load_session(self.name, directory / "head.onnx")
        self.encoder_input = self.encoder.get_inputs()[0].name
        self.encoder_output = encoder_output_name(self.encoder)

    def embeddings(self, images: Sequence[Image.Image]) -> np.ndarray:
        """L2-normalised CLIP image embeddings (the head was trained on normalised ones)."""
        batch = np.stack([preprocess(image) for image in images])
        (raw,) = self.encoder.run([self.encoder_output], {self.encoder_input: batch})
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return (raw / np.maximum(norms, 1e-12)).astype(np.float32)

    def score(self, images: Sequence[Image.Image]) -> list[ScoreResult]:
        if not images:
            return []
        (scores,) = self.head.run(None, {"embedding": self.embeddings(images)})
        return [ScoreResult(float(value), None) for value in scores[:, 0]]
