"""What every scoring model shares: the result type, the error for a missing model, sessions."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from PIL import Image

SCORE_MAX = 10.0  # every model's score is on a 0-10 scale


class ScoreResult(NamedTuple):
    """A 0-10 aesthetic score and, when the model gives a distribution, its spread."""

    score: float
    std: float | None


class ScoringModelMissing(RuntimeError):
    """The model is not installed (or its cache is corrupt); the message says what to run."""

    def __init__(self, model_name: str, detail: str) -> None:
        super().__init__(
            f"Scoring model {model_name!r} is not usable: {detail}. "
            f"Run `python manage.py install_scoring_model --model {model_name}`."
        )
        self.model_name = model_name


class Scorer(ABC):
    """One interface for every model: a batch of decoded images in, one result per image out."""

    name: str

    @abstractmethod
    def score(self, images: Sequence[Image.Image]) -> list[ScoreResult]:
        """Score the whole batch in one ONNX Runtime run (any Pillow mode accepted)."""


def model_dir() -> Path:
    return Path(settings.SCORING_MODEL_DIR)


def session_options():
    """Options for a small shared CPU: threads from SCORING_THREADS (0 = ORT's default),
    one inter-op thread (the graphs are sequential), full graph optimisation, and no
    busy-waiting between runs (several Django-Q workers share the same few cores)."""
    import onnxruntime as ort  # here: the web server reads SCORE_MAX without loading ORT

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    threads = int(settings.SCORING_THREADS)
    if threads > 0:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def load_session(model_name: str, path: Path):
    """An ONNX Runtime CPU session, or ScoringModelMissing naming the file when it is bad."""
    import onnxruntime as ort  # here: the web server reads SCORE_MAX without loading ORT

    if not path.is_file():
        raise ScoringModelMissing(model_name, f"{path} does not exist")
    try:
        return ort.InferenceSession(
            str(path), sess_options=session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ORT raises its own exception types for unreadable graphs
        raise ScoringModelMissing(model_name, f"{path} cannot be loaded ({exc})") from exc
