"""Which file a POI's new image goes to, and when an old file may go.

The safe order (a write error, a killed worker or a same-named POI never costs a photo):
1. the new file is written under a name no row references: the original layout
   `cities/images/pois/<city>/<poi>.<ext>` when it is free, else a stable suffix with the POI's
   id (`<poi>-<id>.<ext>`, alternating with `<poi>-<id>-2.<ext>` on the next replacement);
2. the row is switched to it in a transaction;
3. the old file is deleted only if no row references it any more.

A file left at a name with no row was written by a killed attempt. It is removed only when it
can be nobody else's: at a suffixed name (only this POI, whose claim the caller holds, writes
there), or at the plain name when no other POI of the city maps to it or none of those is
being ranked right now.
"""

from __future__ import annotations

import logging
from typing import Any

from cities.models import PointOfInterest
from cities.paths import safe_segment
from image_ranking.models import PoiRanking

logger = logging.getLogger(__name__)


def free_name(poi: PointOfInterest, extension: str, storage: Any) -> str:
    """A name for the POI's new image that no row references and no live writer may use."""
    field = PointOfInterest._meta.get_field("image_file")
    plain = field.generate_filename(poi, f"image{extension}")
    stem = plain[: -len(extension)]
    current = poi.image_file.name or ""
    for name, exclusive in (
        (plain, False),
        (f"{stem}-{poi.pk}{extension}", True),
        (f"{stem}-{poi.pk}-2{extension}", True),
    ):
        if name == current or PointOfInterest.objects.filter(image_file=name).exists():
            continue
        if not storage.exists(name):
            return name
        if exclusive or not _others_may_write(poi):
            logger.warning("Removing %s left by an interrupted attempt (POI %s)", name, poi.pk)
            storage.delete(name)
            return name
    raise RuntimeError(f"no free file name for POI {poi.pk}")  # unreachable: 2 of 3 are ours


def delete_if_unreferenced(storage: Any, name: str) -> bool:
    """Delete `name` unless a row still references it (two POIs may share an imported file)."""
    if not name or PointOfInterest.objects.filter(image_file=name).exists():
        return False
    storage.delete(name)
    return True


def _others_may_write(poi: PointOfInterest) -> bool:
    """Another POI of the city maps to the same plain name and is being ranked right now."""
    segment = safe_segment(poi.name, "poi")
    namesakes = [
        pk
        for pk, name in PointOfInterest.objects.filter(city_id=poi.city_id)
        .exclude(pk=poi.pk)
        .values_list("pk", "name")
        if safe_segment(name, "poi") == segment
    ]
    return bool(namesakes) and (
        PoiRanking.objects.filter(poi_id__in=namesakes).exclude(claimed_by="").exists()
    )
