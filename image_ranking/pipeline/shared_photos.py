"""One photo, one place: the same file (sha1) or the same scene is never the stored photo of two
POIs of one city.

A city's stored photos are the PoiRanking rows whose image came from a Commons file (origin
pipeline or curator), with that file's sha1, title and scene features, written together with
the image in one transaction (`outcome.record`). `conflict()` is asked twice: before a winner is
downloaded, to skip a photo already taken (no lock, may be stale), and again inside the
transaction that stores it, under the city's row lock, where its answer is final: two workers
storing the same scene for two POIs of one city are serialized there, and the second sees the
first.

When the pipeline's winner is another POI's photo, it stays with the POI it names
(`relevance`): if that is the other one, or neither or both are named, this POI takes its next
best candidate; if it names this POI and not the other (`keep_here`), this POI takes it and the
other POI loses it and is flagged `shared_photo` (under its claim, see `outcome`). A curator's
"Use this image" has no tie-break: another POI's photo is refused.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from cities.models import PointOfInterest
from image_ranking.models import Candidate, PoiRanking
from image_ranking.pipeline import relevance
from image_ranking.scoring import scene_features, scenes


@dataclass(frozen=True)
class Photo:
    """The Commons file about to become a POI's image."""

    sha1: str
    scene: bytes
    title: str
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conflict:
    other_id: int  # the POI whose photo it is
    other_name: str
    other_title: str
    keep_here: bool  # True: this POI takes it, the other loses it

    def reason(self) -> str:
        return f"already the photo of {self.other_name} (POI {self.other_id}) as {self.other_title}"


def stored_elsewhere(poi: PointOfInterest) -> QuerySet[PoiRanking]:
    """The stored photos of the city's other POIs (from a Commons file, still their image)."""
    return (
        PoiRanking.objects.filter(
            poi__city_id=poi.city_id, image_origin__in=PoiRanking.STORED_FROM_CANDIDATE
        )
        .exclude(poi_id=poi.pk)
        .exclude(Q(poi__image_file="") | Q(poi__image_file__isnull=True))
    )


def conflict(poi: PointOfInterest, photo: Photo, *, tie_break: bool = True) -> Conflict | None:
    """Another POI of the city whose stored photo is this file or scene; `keep_here` says
    whether this POI takes it anyway (only with `tie_break`, see the module docstring)."""
    rows = stored_elsewhere(poi).values_list(
        "poi_id", "poi__name", "image_title", "image_sha1", "image_scene"
    )
    mine = _features(photo.scene)  # parsed once, compared with every stored photo
    for other_id, other_name, title, sha1, scene in rows.order_by("poi_id").iterator():
        same = bool(photo.sha1) and sha1 == photo.sha1
        if not same and not _same_scene(mine, scene):
            continue
        keep_here = tie_break and _names_only_here(poi, photo, other_id, other_name, title, sha1)
        return Conflict(other_id, other_name, title, keep_here)
    return None


def _features(data: bytes | None) -> scene_features.Features | None:
    """Stored features, or None: none stored, or of an older version (a 64-bit hash), which
    say nothing."""
    if not data:
        return None
    try:
        return scene_features.Features.from_bytes(bytes(data))
    except (ValueError, struct.error):
        return None


def _same_scene(mine: scene_features.Features | None, stored: bytes | None) -> bool:
    """The one same-scene test (`scoring.scenes.match`) on stored features."""
    if mine is None:
        return False
    theirs = _features(stored)
    return theirs is not None and scenes.match(mine, theirs) is not None


def _names_only_here(
    poi: PointOfInterest, photo: Photo, other_id: int, other_name: str, title: str, sha1: str
) -> bool:
    """The photo names this POI and the other POI's copy does not name the other."""
    city = poi.city.name
    here, there = relevance.Place.of(poi.name, city), relevance.Place.of(other_name, city)
    if not _names(here, photo.title, photo.categories, there):
        return False
    theirs = Candidate.objects.filter(poi_id=other_id, sha1=sha1).values_list(
        "categories", flat=True
    )
    return not _names(there, title, tuple(theirs.first() or ()), here)


def _names(place: relevance.Place, title: str, categories, rival: relevance.Place) -> bool:
    return relevance.assess(place, title, list(categories), [rival]).tier == relevance.NAMES_THIS


# The words `Conflict.reason` (and the note on the POI that lost its photo to the POI it
# names) leave in `Candidate.ineligible_reason`.
_TAKEN_REASONS = ("already the photo of ", "the photo of ")


def is_taken_reason(ineligible_reason: str) -> bool:
    """The pipeline made a candidate ineligible because it is another POI's photo."""
    return ineligible_reason.startswith(_TAKEN_REASONS)
