"""Threshold calibration from curators' labels.

Aesthetic scores are relative to the model (NIMA crowds around 4-7), so the "good enough"
threshold is learnt from the labels: how the scores of images labelled good and bad are
distributed, which cut separates them best, and adopting that cut for the next runs.
Everything works per model: a label records the model whose score it carries, and each
model's labels suggest and adopt that model's threshold. Labels from before models were
recorded (no model name) count for the configured model. Scores are grouped in the database
into 0.1-wide bins, so the panel costs one small query whatever the number of labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, F, FloatField, Q
from django.db.models.functions import Cast, Floor

from image_ranking.models import AdoptedThreshold, ImageTrainingData

BIN = 0.1  # resolution of the threshold search
CHART_BIN = 0.5  # bar width of the chart
SCORE_MAX = 10.0
MIN_PER_LABEL = 3  # fewer labels of either kind: no suggestion


def model_name() -> str:
    """The configured model: what runs score with unless told otherwise."""
    return settings.IMAGE_RANKING_MODEL


def model_choices() -> tuple[str, ...]:
    """The models the calibration panel offers."""
    from image_ranking.scoring.registry import MODEL_NAMES

    return MODEL_NAMES


def _labels_of(model: str):
    rows = ImageTrainingData.objects.filter(model_name=model)
    if model == model_name():
        rows = ImageTrainingData.objects.filter(Q(model_name=model) | Q(model_name=""))
    return rows


def current_threshold(model: str | None = None) -> float:
    """The threshold the next runs use: the latest adopted one for the model, else the setting."""
    return AdoptedThreshold.current(model or model_name())


@dataclass
class ChartBar:
    start: float
    good: int
    bad: int


@dataclass
class Calibration:
    model: str = ""
    good_count: int = 0
    bad_count: int = 0
    unscored_count: int = 0
    suggested: float | None = None
    accuracy: float | None = None  # balanced accuracy of `suggested`
    current: float = 0.0
    current_accuracy: float | None = None
    bars: list[ChartBar] = field(default_factory=list)
    max_bar: int = 1

    def chart(self) -> dict:
        """Coordinates of the inline SVG: x = score * 40 (0-400), bars up to 60 high."""
        height, scale = 60, 40
        bar_width = CHART_BIN * scale / 2 - 2
        bars = []
        for bar in self.bars:
            x = bar.start * scale
            g = round(height * bar.good / self.max_bar, 1)
            b = round(height * bar.bad / self.max_bar, 1)
            bars.append(
                {
                    "x_good": x + 1,
                    "x_bad": x + 1 + bar_width + 1,
                    "width": bar_width,
                    "good": bar.good,
                    "bad": bar.bad,
                    "good_h": g,
                    "bad_h": b,
                    "good_y": height - g,
                    "bad_y": height - b,
                    "start": bar.start,
                }
            )
        return {
            "bars": bars,
            "current_x": round(self.current * scale, 1),
            "suggested_x": None if self.suggested is None else round(self.suggested * scale, 1),
            "ticks": [{"x": t * scale, "label": t} for t in range(0, 11)],
        }

    @property
    def enough(self) -> bool:
        return self.good_count >= MIN_PER_LABEL and self.bad_count >= MIN_PER_LABEL


def score_bins(model: str | None = None) -> dict[str, dict[int, int]]:
    """{label: {bin index: count}} of the model's scored labels, bin = floor(score / BIN)."""
    rows = (
        _labels_of(model or model_name())
        .filter(aesthetic_score__isnull=False)
        .annotate(bin=Floor(Cast(F("aesthetic_score"), FloatField()) * (1 / BIN)))
        .values("label", "bin")
        .annotate(n=Count("pk"))
        .order_by()
    )
    bins: dict[str, dict[int, int]] = {"good": {}, "bad": {}}
    for row in rows:
        index = min(max(int(row["bin"]), 0), int(SCORE_MAX / BIN))
        bins.setdefault(row["label"], {})
        bins[row["label"]][index] = bins[row["label"]].get(index, 0) + row["n"]
    return bins


def balanced_accuracy(bins: dict[str, dict[int, int]], threshold: float) -> float | None:
    """Mean of the share of good labels at or above and bad labels below the threshold."""
    good, bad = bins.get("good", {}), bins.get("bad", {})
    n_good, n_bad = sum(good.values()), sum(bad.values())
    if not n_good or not n_bad:
        return None
    cut = round(threshold / BIN)  # bins >= cut count as "good enough"
    good_above = sum(n for i, n in good.items() if i >= cut)
    bad_below = sum(n for i, n in bad.items() if i < cut)
    return (good_above / n_good + bad_below / n_bad) / 2


def best_threshold(bins: dict[str, dict[int, int]]) -> tuple[float | None, float | None]:
    """The bin edge with the best balanced accuracy; ties go to the middle of the best run."""
    if not bins.get("good") or not bins.get("bad"):
        return None, None
    scored = [
        (balanced_accuracy(bins, cut * BIN), cut) for cut in range(0, int(SCORE_MAX / BIN) + 2)
    ]
    best = max(acc for acc, _ in scored if acc is not None)
    cuts = [cut for acc, cut in scored if acc is not None and math.isclose(acc, best)]
    # The best cuts form runs of equal accuracy (an empty gap between good and bad scores):
    # take the middle of the first run, the cut farthest from both sides.
    run = [cuts[0]]
    for cut in cuts[1:]:
        if cut != run[-1] + 1:
            break
        run.append(cut)
    middle = run[len(run) // 2]
    return round(middle * BIN, 2), best


def calibrate(model: str | None = None) -> Calibration:
    """Everything the calibration panel shows for `model` (default: the configured one)."""
    model = model or model_name()
    bins = score_bins(model)
    result = Calibration(model=model, current=current_threshold(model))
    result.good_count = sum(bins.get("good", {}).values())
    result.bad_count = sum(bins.get("bad", {}).values())
    if result.enough:
        result.suggested, result.accuracy = best_threshold(bins)
    result.current_accuracy = balanced_accuracy(bins, result.current)
    per_bar = round(CHART_BIN / BIN)
    bars = []
    for start in range(0, int(SCORE_MAX / BIN), per_bar):
        window = range(start, start + per_bar + (1 if start + per_bar >= SCORE_MAX / BIN else 0))
        bars.append(
            ChartBar(
                start=round(start * BIN, 1),
                good=sum(bins.get("good", {}).get(i, 0) for i in window),
                bad=sum(bins.get("bad", {}).get(i, 0) for i in window),
            )
        )
    result.bars = bars
    result.max_bar = max([1, *(max(b.good, b.bad) for b in bars)])
    return result


class NotEnoughLabels(ValueError):
    pass


def adopt_threshold(
    threshold: float | None = None, *, model: str | None = None, user=None
) -> AdoptedThreshold:
    """Record `threshold` (default: the model's suggestion) as the one the next runs with
    `model` (default: the configured one) use."""
    model = model or model_name()
    cal = calibrate(model)
    if threshold is None:
        if cal.suggested is None:
            raise NotEnoughLabels(
                f"need at least {MIN_PER_LABEL} scored good and {MIN_PER_LABEL} scored bad labels"
            )
        threshold = cal.suggested
    if not (0.0 <= threshold <= SCORE_MAX) or math.isnan(threshold):
        raise ValueError(f"threshold must be between 0 and {SCORE_MAX:g}")
    return AdoptedThreshold.objects.create(
        model_name=model,
        threshold=threshold,
        good_count=cal.good_count,
        bad_count=cal.bad_count,
        accuracy=balanced_accuracy(score_bins(model), threshold),
        adopted_by=user if getattr(user, "is_authenticated", False) else None,
    )
