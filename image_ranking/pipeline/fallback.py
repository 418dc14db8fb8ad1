"""Category fallback images for flagged POIs without a photo.

Each category has one real photo in `static/image_ranking/fallback/<category>.jpg`, taken from
scikit-image's sample data (public domain or CC0):
see = "rocket" (SpaceX launch photo, public domain), eat = "coffee" and drink = a crop of it
(Rachel Michetti, CC0), sleep = "chelsea" (Stefan van der Walt, CC0), shop = "camera"
(Lav Varshney, CC0), play = "astronaut" (NASA, public domain).

A fallback is stored through the same safe storage path as a winner (a copy under
`poi_image_path()`, switched in with its origin in one transaction), and
`PoiRanking.image_origin = fallback` keeps the POI in scope "missing", so a later run replaces
it as soon as Commons has something good.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cities.models import PointOfInterest
from image_ranking.models import PoiRanking
from image_ranking.pipeline import outcome, storage
from image_ranking.pipeline.claims import PoiBusy, holding
from image_ranking.pipeline.outcome import Decision, NewImage

logger = logging.getLogger(__name__)

FALLBACK_DIR = Path(__file__).resolve().parents[2] / "static" / "image_ranking" / "fallback"


def fallback_path(category: str) -> Path | None:
    """The category's image file, or None when the category has none."""
    path = FALLBACK_DIR / f"{category}.jpg"
    return path if path.is_file() else None


def written(poi: PointOfInterest) -> NewImage | None:
    """The category's image written under a free name for `poi` (the caller holds its claim
    and records it), or None when the category has none."""
    path = fallback_path(poi.category)
    if path is None:
        logger.warning("No fallback image for category %r (POI %s)", poi.category, poi.pk)
        return None
    name = storage.write_file(poi, storage.prepare_bytes(path.read_bytes()))
    return NewImage(name, PoiRanking.Origin.FALLBACK)


def apply_category_fallback(poi: PointOfInterest) -> bool:
    """A curator's click: give a POI without a real image its category's image, under the
    POI's claim; False when it has a real image or the category has no fallback.

    Raises StorageError when a job is ranking the POI right now."""
    try:
        with holding(poi) as (ranking, token):
            poi = PointOfInterest.objects.select_related("city").get(pk=poi.pk)
            if poi.image_file and not ranking.uses_fallback:
                return False
            image = written(poi)
            if image is None:
                return False
            outcome.record(poi, token, Decision("", "", flag="", image=image))
    except PoiBusy as exc:
        raise storage.StorageError(str(exc)) from exc
    logger.info("POI %s %r got the %s fallback image", poi.pk, poi.name, poi.category)
    return True
