"""One photo, one place: the same file (sha1) or the same scene (difference hash) never wins
for two POIs of one city.

When the photo about to win here is already another POI's winner, it stays with the POI it
names (`relevance`): if that is the other one, or neither or both are named, this POI takes
its next best candidate; if it names this POI and not the other, this POI takes it and the
other POI is flagged `shared_photo` so a curator re-ranks it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cities.models import PointOfInterest
from image_ranking.models import Candidate
from image_ranking.pipeline import relevance
from image_ranking.scoring.sharpness import same_scene


@dataclass(frozen=True)
class Conflict:
    other: PointOfInterest
    other_title: str
    keep_here: bool  # True: this POI takes it, the other is flagged

    def reason(self) -> str:
        return f"already the photo of {self.other.name} (POI {self.other.pk}) as {self.other_title}"


def conflict(
    poi: PointOfInterest, sha1: str, dhash: str, title: str, categories: list[str]
) -> Conflict | None:
    """Another POI of the city whose winner is this file or scene, and who keeps it."""
    rows = (
        Candidate.objects.filter(poi__city_id=poi.city_id, is_winner=True)
        .exclude(poi_id=poi.pk)
        .select_related("poi")
        .only("title", "sha1", "dhash", "categories", "poi__name", "poi__city_id")
    )
    if not dhash:
        rows = rows.filter(sha1=sha1)
    for row in rows.iterator():
        same = (sha1 and row.sha1 == sha1) or (
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


def _names(place: relevance.Place, title: str, categories: list[str], rival) -> bool:
    return relevance.assess(place, title, categories, [rival]).tier == relevance.NAMES_THIS
