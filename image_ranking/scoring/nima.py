"""NIMA scorer: preprocessing exactly as idealo's pipeline, one ONNX run per batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from image_ranking.scoring.imaging import to_rgb

from . import cache
from .base import Scorer, ScoreResult, ScoringModelMissing, load_session
from .nima_onnx import INPUT_NAME, INPUT_SIZE

RATINGS = np.arange(1, 11, dtype=np.float64)


def preprocess(image: Image.Image) -> np.ndarray:
    """Keras 2.1.6 `load_img`: RGB via Pillow, then a 224x224 NEAREST resize (aspect not
    kept, no crop). The model was trained on this; a smoother resize lowers scores."""
    rgb = to_rgb(image)
    if rgb.size != (INPUT_SIZE, INPUT_SIZE):
        rgb = rgb.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.NEAREST)
    return np.asarray(rgb, dtype=np.uint8)


def distribution_stats(probs: np.ndarray) -> list[ScoreResult]:
    """Mean rating sum(i * p_i) and its standard deviation, per row, in float64."""
    p = probs.astype(np.float64)
    means = p @ RATINGS
    stds = np.sqrt(np.sum(p * (RATINGS[None, :] - means[:, None]) ** 2, axis=1))
    return [ScoreResult(float(m), float(s)) for m, s in zip(means, stds, strict=True)]


class NimaScorer(Scorer):
    name = "nima"

    def __init__(self, directory: Path) -> None:
        found = cache.problems(directory)
        if found:
            raise ScoringModelMissing(self.name, "; ".join(found))
        self.session = load_session(self.name, directory / "nima.onnx")

    def probabilities(self, images: Sequence[Image.Image]) -> np.ndarray:
        batch = np.stack([preprocess(image) for image in images])
        return self.session.run(None, {INPUT_NAME: batch})[0]

    def score(self, images: Sequence[Image.Image]) -> list[ScoreResult]:
        if not images:
            return []
        return distribution_stats(self.probabilities(images))
