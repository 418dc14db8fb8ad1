"""Category fallback images for flagged POIs without a photo.

Each category has one real photo in `static/image_ranking/fallback/<category>.jpg`, taken from
scikit-image's sample data (public domain or CC0):
see = "rocket" (SpaceX launch photo, public domain), eat = "coffee" and drink = a crop of it
(Rachel Michetti, CC0), sleep = "chelsea" (Stefan van der Walt, CC0), shop = "camera"
(Lav Varshney, CC0), play = "astronaut" (NASA, public domain).

A fallback is stored through the same safe storage path as a winner (a copy under
`poi_image_path()`), and `PoiRanking.image_origin = fallback` keeps the POI in scope "missing", so a
later run replaces it as soon as Commons has something good.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.utils import timezone

from cities.models import PointOfInterest
from image_ranking.models import PoiRanking

logger = logging.getLogger(__name__)

FALLBACK_DIR = Path(__file__).resolve().parents[2] / "static" / "image_ranking" / "fallback"


def fallback_path(category: str) -> Path | None:
    """The category's image file, or None when the category has none."""
    path = FALLBACK_DIR / f"{category}.jpg"
    return path if path.is_file() else None


def apply_category_fallback(poi: PointOfInterest, *, ranking: PoiRanking | None = None) -> bool:
    """Give a POI without an image its category's image; False when it has one already or the
    category has no fallback.

    A ranking job passes its `ranking` row (it already holds the POI's claim); a curator's
    click passes none, and the POI's claim is held meanwhile (StorageError when a job is
    ranking it right now).
    """
    from image_ranking.pipeline.claims import PoiBusy, holding
    from image_ranking.pipeline.storage import StorageError

    if ranking is not None:
        return _apply(poi, ranking)
    try:
        with holding(poi) as held:
            return _apply(poi, held)
    except PoiBusy as exc:
        raise StorageError(str(exc)) from exc


def _apply(poi: PointOfInterest, ranking: PoiRanking) -> bool:
    from image_ranking.pipeline.storage import store_image_bytes

    poi = PointOfInterest.objects.select_related("city").get(pk=poi.pk)
    ranking.refresh_from_db()
    if poi.image_file and not ranking.uses_fallback:
        return False
    path = fallback_path(poi.category)
    if path is None:
        logger.warning("No fallback image for category %r (POI %s)", poi.category, poi.pk)
        return False
    store_image_bytes(poi, path.read_bytes())
    ranking.image_origin = PoiRanking.Origin.FALLBACK
    PoiRanking.objects.filter(pk=ranking.pk).update(
        image_origin=PoiRanking.Origin.FALLBACK, ranked_at=timezone.now()
    )
    logger.info("POI %s %r got the %s fallback image", poi.pk, poi.name, poi.category)
    return True
