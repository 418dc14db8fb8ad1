"""One photo, one place: the same file (sha1) or the same scene (difference hash) never wins
for two POIs of one city.

When the photo about to win here is already another POI's winner, it stays with the POI it
names (`relevance`): if that is the other one, or neither or both are named, this POI takes
its next best candidate; if it names this POI and not the other, this POI takes it and the
other POI is flagged `shared_photo` so a curator re-ranks it.

A curator's "Use this image" follows the same rule for the same file (`holder`): a file that
is already another POI's current image is refused, whatever it names.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from cities.models import PointOfInterest
from image_ranking.models import Candidate, PoiRanking
from image_ranking.pipeline import relevance
from image_ranking.scoring.sharpness import same_scene


@dataclass(frozen=True)
class Conflict:
    other: PointOfInterest
    other_title: str
    keep_here: bool  # True: this POI takes it, the other is flagged

    def reason(self) -> str:
        return f"already the photo of {self.other.name} (POI {self.other.pk}) as {self.other_title}"


def _winners_elsewhere(poi: PointOfInterest) -> QuerySet[Candidate]:
    """The winners of the city's other POIs: the photos they have (or had) from a candidate."""
    return (
        Candidate.objects.filter(poi__city_id=poi.city_id, is_winner=True)
        .exclude(poi_id=poi.pk)
        .select_related("poi")
        .only("title", "image_url", "sha1", "dhash", "categories", "poi__name", "poi__city_id")
    )


def same_file(row: Candidate, sha1: str, image_url: str = "") -> bool:
    """`row` is this very file: the same sha1, or the same Commons URL."""
    return bool(sha1 and row.sha1 == sha1) or bool(image_url and row.image_url == image_url)


def conflict(
    poi: PointOfInterest, sha1: str, dhash: str, title: str, categories: list[str]
) -> Conflict | None:
    """Another POI of the city whose winner is this file or scene, and who keeps it."""
    rows = _winners_elsewhere(poi)
    if not dhash:
        rows = rows.filter(sha1=sha1)
    for row in rows.iterator():
        same = same_file(row, sha1) or (
            dhash and row.dhash and same_scene(int(dhash, 16), int(row.dhash, 16))
        )
        if not same:
            continue
        here = relevance.Place.of(poi.name, poi.city.name)
        there = relevance.Place.of(row.poi.name, poi.city.name)
        names_here = _names(here, title, categories, there)
        names_there = _names(there, row.title, row.categories, here)
        return Conflict(row.poi, row.title, keep_here=names_here and not names_there)
    return None


def holder(poi: PointOfInterest, sha1: str, image_url: str) -> Conflict | None:
    """Another POI of the city whose current image is this very file (same sha1 or URL),
    stored from its winner by the pipeline or a curator: a curator's "Use this image" is
    refused then (`keep_here` is False; there is no relevance tie-break for a click)."""
    match = Q(image_url=image_url) if image_url else Q(pk__in=[])
    if sha1:
        match |= Q(sha1=sha1)
    rows = (
        _winners_elsewhere(poi)
        .filter(match, poi__ranking__image_origin__in=PoiRanking.STORED_FROM_CANDIDATE)
        .exclude(Q(poi__image_file="") | Q(poi__image_file__isnull=True))
    )
    for row in rows.order_by("poi_id"):
        if same_file(row, sha1, image_url):
            return Conflict(row.poi, row.title, keep_here=False)
    return None


# The words `Conflict.reason` (and the pipeline's note on the POI that lost its photo to the
# POI it names) leave in `Candidate.ineligible_reason`.
_TAKEN_REASONS = ("already the photo of ", "the photo of ")


def is_taken_reason(ineligible_reason: str) -> bool:
    """The pipeline made a candidate ineligible because it is another POI's photo."""
    return ineligible_reason.startswith(_TAKEN_REASONS)


def _names(place: relevance.Place, title: str, categories: list[str], rival) -> bool:
    return relevance.assess(place, title, categories, [rival]).tier == relevance.NAMES_THIS
