"""One scorer per model per process: loaded lazily on first use, under a lock."""

from __future__ import annotations

import threading

from django.conf import settings

from .base import Scorer, model_dir

MODEL_NAMES = ("nima", "laion")
_scorers: dict[str, Scorer] = {}
_lock = threading.Lock()


def get_scorer(model_name: str | None = None) -> Scorer:
    """The process-wide scorer for `model_name` (default settings.IMAGE_RANKING_MODEL).

    Raises ScoringModelMissing (with the install command) when the model is not installed.
    """
    name = (model_name or settings.IMAGE_RANKING_MODEL).lower()
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown scoring model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    scorer = _scorers.get(name)
    if scorer is not None:
        return scorer
    with _lock:
        if name not in _scorers:
            # Only the chosen model's module (and its runtime) loads, and only when used.
            if name == "nima":
                from .nima import NimaScorer  # only the configured model's code loads

                _scorers[name] = NimaScorer(model_dir() / "nima")
            else:
                from .laion import LaionScorer  # only the configured model's code loads

                _scorers[name] = LaionScorer(model_dir() / "laion")
        return _scorers[name]


def reset() -> None:
    """Forget loaded scorers (tests that install into a fresh SCORING_MODEL_DIR)."""
    with _lock:
        _scorers.clear()
