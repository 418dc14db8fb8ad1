"""Aesthetic scoring: one interface for NIMA and the LAION predictor (ONNX Runtime, CPU).

from image_ranking.scoring import get_scorer
results = get_scorer().score(images)   # [ScoreResult(score, std), ...]
"""

from .base import SCORE_MAX, Scorer, ScoreResult, ScoringModelMissing
from .registry import MODEL_NAMES, get_scorer

__all__ = ["MODEL_NAMES", "SCORE_MAX", "ScoreResult", "Scorer", "ScoringModelMissing", "get_scorer"]
