"""Bootstrap labels, as the owner meant them: "current curated image = good, the fetched
alternatives = bad".

- *Curated* means an image a curator chose: one the POI had before image ranking, or one set
  with "use this image". A pipeline winner (also after a re-rank kept it) and a category
  fallback are never labelled good, and their alternatives are not labelled bad either: a
  pipeline's choice says nothing about which photo is better.
- The current image itself is never labelled bad through its candidate: the candidate a
  curator chose, one a curator labelled good, and one whose file is byte-identical to the
  current file (same sha1) are the current image, not alternatives.
- A file (same sha1) never gets contradicting automatic labels: a file that is good anywhere
  (the current image of a curated POI, or labelled good) is not labelled bad on any POI, and
  earlier bootstrap "bad" labels of such a file are removed.
- A label that exists is never overwritten (a curator's least of all); bootstrap labels keep
  `source = bootstrap`, which the dashboard shows apart from a curator's.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from image_ranking.models import Candidate, ImageTrainingData, PoiRanking, RankablePoi
from image_ranking.review.cards import rank_score
from image_ranking.review.labels import current_image_url

logger = logging.getLogger(__name__)

Label = ImageTrainingData.Label
Source = ImageTrainingData.Source
Origin = PoiRanking.Origin


@dataclass(frozen=True)
class BootstrapResult:
    pois: int
    good: int
    bad: int
    removed: int  # earlier bootstrap "bad" labels of a file now known good


def bootstrap_pois(city_id: int | None = None) -> QuerySet[RankablePoi]:
    """POIs in lists whose current real image a curator chose (see the module docstring)."""
    return RankablePoi.objects.in_lists().in_city(city_id).curated()


def file_sha1(poi: RankablePoi) -> str:
    """The sha1 of the POI's stored file ("" when it cannot be read), as Commons reports it."""
    digest = hashlib.sha1(usedforsecurity=False)
    try:
        with poi.image_file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 16), b""):
                digest.update(chunk)
    except (OSError, ValueError):
        return ""
    return digest.hexdigest()


def _origin(poi: RankablePoi) -> str:
    try:
        return poi.ranking.image_origin
    except PoiRanking.DoesNotExist:
        return Origin.EXISTING


def _good_file_sha1s() -> set[str]:
    """The sha1s of candidates labelled good on their POI (by anyone)."""
    good = ImageTrainingData.objects.filter(
        poi_id=OuterRef("poi_id"), image_url=OuterRef("image_url"), label=Label.GOOD
    )
    return set(
        Candidate.objects.filter(Exists(good)).exclude(sha1="").values_list("sha1", flat=True)
    )


def bootstrap(city_id: int | None = None) -> BootstrapResult:
    """Create bootstrap labels for the curated POIs (of the city); see the module docstring.

    Ineligible candidates (too far away) and ones that failed to score are left out: they say
    nothing about how an image looks. The curated files are read and hashed first, outside
    the transaction that writes the labels, so workers never wait on a database lock while
    files are read.
    """
    pois = list(bootstrap_pois(city_id).select_related("ranking"))
    ids = [poi.pk for poi in pois]
    by_poi: dict[int, list[Candidate]] = defaultdict(list)
    for cand in Candidate.objects.filter(poi_id__in=ids).order_by("poi_id", "search_rank"):
        by_poi[cand.poi_id].append(cand)
    file_sha1s = {
        poi.pk: file_sha1(poi) for poi in pois if _origin(poi) == Origin.EXISTING and by_poi[poi.pk]
    }
    with transaction.atomic():
        return _bootstrap(pois, by_poi, file_sha1s)


def _bootstrap(
    pois: list[RankablePoi], by_poi: dict[int, list[Candidate]], file_sha1s: dict[int, str]
) -> BootstrapResult:
    ids = [poi.pk for poi in pois]
    existing = set(
        ImageTrainingData.objects.filter(poi_id__in=ids).values_list("poi_id", "image_url")
    )
    curator_good = set(
        ImageTrainingData.objects.filter(
            poi_id__in=ids, label=Label.GOOD, source=Source.CURATOR
        ).values_list("poi_id", "image_url")
    )
    current: dict[int, list[Candidate]] = {}
    for poi in pois:
        origin = _origin(poi)
        sha1 = file_sha1s.get(poi.pk, "")
        current[poi.pk] = [
            c
            for c in by_poi[poi.pk]
            if (origin == Origin.CURATOR and c.is_winner)
            or (poi.pk, c.image_url) in curator_good
            or (sha1 and c.sha1 == sha1)
        ]
    current_sha1s = {c.sha1 for cands in current.values() for c in cands if c.sha1}
    good_sha1s = current_sha1s | _good_file_sha1s()

    rows: list[ImageTrainingData] = []
    for poi in pois:
        url = current_image_url(poi)
        if url and (poi.pk, url) not in existing:
            source = next((c for c in current[poi.pk] if rank_score(c) is not None), None)
            rows.append(
                ImageTrainingData(
                    poi=poi,
                    image_url=url,
                    thumbnail_url=url,
                    label=Label.GOOD,
                    aesthetic_score=rank_score(source) if source else None,
                    model_name=source.model_name if source else "",
                    source=Source.BOOTSTRAP,
                )
            )
            existing.add((poi.pk, url))
        mine = {c.pk for c in current[poi.pk]}
        for cand in by_poi[poi.pk]:
            if (
                cand.pk in mine
                or not cand.eligible
                or cand.error
                or rank_score(cand) is None
                or (cand.sha1 and cand.sha1 in good_sha1s)
                or (poi.pk, cand.image_url) in existing
            ):
                continue
            existing.add((poi.pk, cand.image_url))
            rows.append(
                ImageTrainingData(
                    poi_id=poi.pk,
                    image_url=cand.image_url,
                    thumbnail_url=cand.thumb_url,
                    label=Label.BAD,
                    aesthetic_score=rank_score(cand),
                    model_name=cand.model_name,
                    source=Source.BOOTSTRAP,
                )
            )
    removed = _remove_contradicted(current_sha1s)
    # ignore_conflicts: a curator labelling at this very moment keeps their label.
    ImageTrainingData.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    good = sum(1 for r in rows if r.label == Label.GOOD)
    logger.info(
        "Bootstrap: %d good, %d bad from %d curated POIs; %d contradicted labels removed",
        good, len(rows) - good, len(pois), removed,
    )  # fmt: skip
    return BootstrapResult(pois=len(pois), good=good, bad=len(rows) - good, removed=removed)


def _remove_contradicted(good_sha1s: set[str]) -> int:
    """Delete earlier bootstrap "bad" labels of files now known to be a curated image."""
    if not good_sha1s:
        return 0
    same_file = Candidate.objects.filter(
        poi_id=OuterRef("poi_id"), image_url=OuterRef("image_url"), sha1__in=good_sha1s
    )
    deleted, _ = (
        ImageTrainingData.objects.filter(source=Source.BOOTSTRAP, label=Label.BAD)
        .filter(Exists(same_file))
        .delete()
    )
    return deleted
