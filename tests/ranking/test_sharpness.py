"""The blur penalty: only a blurred copy loses points (quality.assess_copies finds it)."""

from __future__ import annotations

from image_ranking.scoring import sharpness


def test_only_a_blurred_copy_loses_the_penalty():
    assert sharpness.ranking_score(5.0, blurred=True) == 5.0 - sharpness.BLUR_PENALTY
    assert sharpness.ranking_score(5.0, blurred=False) == 5.0
