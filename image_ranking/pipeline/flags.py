"""Flags for curators: one Validation record per flagged POI, kept in step with re-runs.

The original project's `Validation` table is where curators look for data problems. A POI
gets at most one open image-ranking record (linked from its PoiRanking and marked
`poi:<id>` in `specialized_aggregate`), updated on every re-run and deleted once the POI has
an image, so re-running a batch never piles up duplicates.
"""

from __future__ import annotations

import logging

from django.db import transaction

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


def poi_marker(poi: PointOfInterest) -> str:
    """The `specialized_aggregate` value naming the POI (the Validation model has no POI FK)."""
    return f"poi:{poi.pk}"


def _open_flags(poi: PointOfInterest):
    return Validation.objects.filter(context=CONTEXT, specialized_aggregate=poi_marker(poi))


def set_flag(poi: PointOfInterest, ranking: PoiRanking, aggregate: str, detail: str) -> Validation:
    """Create or update the POI's one flag; extra rows (from older code or races) are removed."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown flag {aggregate!r}")
    description = f"{poi.name} (POI {poi.pk}): {detail}"[:500]
    with transaction.atomic():
        existing = list(_open_flags(poi).select_for_update().order_by("pk"))
        if existing:
            flag = existing[0]
            Validation.objects.filter(pk__in=[row.pk for row in existing[1:]]).delete()
            flag.parent = poi.city
            flag.aggregate = aggregate
            flag.description = description
            flag.save(update_fields=["parent", "aggregate", "description"])
        else:
            flag = Validation.objects.create(
                parent=poi.city,
                context=CONTEXT,
                aggregate=aggregate,
                specialized_aggregate=poi_marker(poi),
                description=description,
            )
        if ranking.validation_id != flag.pk:
            ranking.validation = flag
            PoiRanking.objects.filter(pk=ranking.pk).update(validation=flag)
    logger.warning("Flagged POI %s %r as %s: %s", poi.pk, poi.name, aggregate, detail)
    return flag


def resolve_flag(poi: PointOfInterest, ranking: PoiRanking | None = None) -> int:
    """Delete the POI's image-ranking flags (it has an image now); returns how many."""
    deleted, _ = _open_flags(poi).delete()
    if ranking is not None:
        ranking.validation = None
        PoiRanking.objects.filter(pk=ranking.pk).update(validation=None)
    if deleted:
        logger.info("Resolved the image-ranking flag of POI %s %r", poi.pk, poi.name)
    return deleted
