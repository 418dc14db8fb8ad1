"""System checks: settings that would otherwise fail every POI at run time fail `check`."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from image_ranking.commons.renditions import STANDARD_WIDTHS


@checks.register(checks.Tags.compatibility)
def check_rendition_widths(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Commons serves thumbnails only at its standard width steps; any other width has no
    URL, so a non-standard setting would fail every candidate."""
    steps = ", ".join(str(w) for w in STANDARD_WIDTHS)
    errors = []
    thumb = settings.IMAGE_RANKING_THUMB_WIDTH
    if thumb not in STANDARD_WIDTHS:
        errors.append(
            checks.Error(
                f"IMAGE_RANKING_THUMB_WIDTH={thumb} is not a standard Commons thumbnail width.",
                hint=f"Use one of {steps}.",
                id="image_ranking.E001",
            )
        )
    winner = settings.IMAGE_RANKING_WINNER_WIDTH
    if winner != 0 and winner not in STANDARD_WIDTHS:
        errors.append(
            checks.Error(
                f"IMAGE_RANKING_WINNER_WIDTH={winner} is not a standard Commons thumbnail width.",
                hint=f"Use one of {steps}, or 0 for the original file.",
                id="image_ranking.E002",
            )
        )
    return errors
