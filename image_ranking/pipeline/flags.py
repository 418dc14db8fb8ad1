"""Flags for curators: one Validation record per flagged POI, kept in step with re-runs.

The original project's `Validation` table is where curators look for data problems. A POI
gets at most one open image-ranking record, linked from its PoiRanking (`validation`, the one
link: the Validation model has no POI column), updated on every re-run and deleted once the POI
has an image, so re-running a batch never piles up duplicates. Callers hold the POI's claim and
save the ranking row in the same transaction (`outcome.record`).
"""

from __future__ import annotations

import logging

from cities.models import PointOfInterest, Validation
from image_ranking.models import PoiRanking

logger = logging.getLogger(__name__)

CONTEXT = "image_ranking"
NO_IMAGES = "no_images"
BELOW_THRESHOLD = "below_threshold"
FETCH_FAILED = "fetch_failed"
INTERNAL_ERROR = "internal_error"  # an unexpected error, a lost task or a timeout
SHARED_PHOTO = "shared_photo"  # its photo names another POI of the city, which now has it
AGGREGATES = (NO_IMAGES, BELOW_THRESHOLD, FETCH_FAILED, INTERNAL_ERROR, SHARED_PHOTO)


def set_flag(poi: PointOfInterest, ranking: PoiRanking, aggregate: str, detail: str) -> None:
    """Create or update the POI's one flag and link it from `ranking` (the caller saves it)."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown flag {aggregate!r}")
    description = f"{poi.name} (POI {poi.pk}): {detail}"[:500]
    flag = Validation.objects.filter(pk=ranking.validation_id).first()
    if flag is None:
        flag = Validation(context=CONTEXT)
    flag.parent_id = poi.city_id
    flag.aggregate = aggregate
    flag.description = description
    flag.save()
    ranking.validation = flag
    logger.warning("Flagged POI %s %r as %s: %s", poi.pk, poi.name, aggregate, detail)


def resolve_flag(poi: PointOfInterest, ranking: PoiRanking) -> None:
    """Delete the POI's flag (it has an image now); the caller saves `ranking`."""
    if ranking.validation_id is None:
        return
    Validation.objects.filter(pk=ranking.validation_id).delete()
    ranking.validation = None
    logger.info("Resolved the image-ranking flag of POI %s %r", poi.pk, poi.name)
