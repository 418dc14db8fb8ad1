"""Export of the training labels (CSV for a spreadsheet, JSON Lines for a training
pipeline): every labelled picture of every POI, one row each, streamed POI batch by POI
batch. The category fallback image is no photo of its POI: labels of it made before
fallbacks were refused are left out.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

from django.db.models import Q

from image_ranking.models import Candidate, ImageTrainingData, PoiRanking
from image_ranking.review.bootstrap import file_sha1
from image_ranking.review.labels import current_image_url

EXPORT_FIELDS = [
    "poi_id",
    "poi_name",
    "city",
    "image_url",
    "thumbnail_url",
    "current_image_url",
    "label",
    "aesthetic_score",
    "model_name",
    "candidate_id",
    "sha1",
    "width",
    "height",
    "search_rank",
    "source",
    "image_origin",
    "labelled_by",
    "created_at",
    "updated_at",
]
EXPORT_BATCH = 500  # POIs whose candidates and rankings are read at once
Origin = PoiRanking.Origin
# `image_origin` of an export row: where the picture came from.
ORIGIN_NAMES = {
    Origin.PIPELINE: "pipeline",  # the pipeline's winner, stored by it
    Origin.CURATOR: "curator",  # chosen by a curator with "Use this image"
    Origin.EXISTING: "existing",  # there before image ranking
    Origin.FALLBACK: "fallback",
}


def _same_url(url: str) -> str:
    return url


def export_rows(absolute: Callable[[str], str] = _same_url) -> Iterator[dict[str, Any]]:
    """Every labelled picture of every POI, one row each, POI by POI, streamed from the
    database (a fixed number of queries per `EXPORT_BATCH` POIs).

    A POI's current image and the candidate it was stored from are one picture: its label
    (of the media URL) and the candidate's are one row, with the candidate's Commons URL,
    id, sha1, size and search rank and `current_image_url` set; when both are labelled, the
    later label counts. The candidate of a current image is the winner when the pipeline
    or a curator stored it, else the candidate with the stored file's sha1. A label of a
    current image that is the category fallback is left out: that image is no photo of the
    POI (labels made before fallbacks were refused). `absolute` makes
    a site path ("/media/...") an absolute URL (`request.build_absolute_uri`)."""
    rows = (
        ImageTrainingData.objects.select_related("poi__city", "labelled_by")
        .order_by("poi_id", "pk")
        .iterator(chunk_size=2000)
    )
    batch: list[list[ImageTrainingData]] = []
    for _, group in itertools.groupby(rows, key=lambda row: row.poi_id):
        batch.append(list(group))
        if len(batch) >= EXPORT_BATCH:
            yield from _export_batch(batch, absolute)
            batch = []
    yield from _export_batch(batch, absolute)


def _export_batch(
    groups: list[list[ImageTrainingData]], absolute: Callable[[str], str]
) -> Iterator[dict[str, Any]]:
    if not groups:
        return
    poi_ids = [group[0].poi_id for group in groups]
    urls = {row.image_url for group in groups for row in group}
    by_url: dict[tuple[int, str], Candidate] = {}
    winners: dict[int, Candidate] = {}
    by_sha1: dict[tuple[int, str], Candidate] = {}
    fields = ("pk", "poi_id", "image_url", "thumb_url", "sha1", "width", "height")
    candidates = Candidate.objects.filter(poi_id__in=poi_ids).filter(
        Q(is_winner=True) | Q(image_url__in=urls) | ~Q(sha1="")
    )
    for c in candidates.only(*fields, "search_rank", "model_name", "is_winner"):
        by_url[(c.poi_id, c.image_url)] = c
        if c.is_winner:
            winners[c.poi_id] = c
        if c.sha1:
            by_sha1.setdefault((c.poi_id, c.sha1), c)
    origins = dict(
        PoiRanking.objects.filter(poi_id__in=poi_ids).values_list("poi_id", "image_origin")
    )
    for group in groups:
        poi = group[0].poi
        origin = origins.get(poi.pk, Origin.EXISTING)
        current_url = current_image_url(poi) or ""
        own = None  # the candidate the current image is
        if current_url and origin in PoiRanking.STORED_FROM_CANDIDATE:
            own = winners.get(poi.pk)
        elif (
            current_url
            and origin == Origin.EXISTING
            and any(row.image_url == current_url for row in group)
        ):  # read the file only when its label needs it
            sha1 = file_sha1(poi)
            own = by_sha1.get((poi.pk, sha1)) if sha1 else None
        merged: dict[str, ImageTrainingData] = {}  # picture key -> the label that counts
        for row in group:
            if origin == Origin.FALLBACK and current_url and row.image_url == current_url:
                continue  # the category fallback: not a photo of the POI
            key = (
                own.image_url if own is not None and row.image_url == current_url else row.image_url
            )
            if key not in merged or row.updated_at >= merged[key].updated_at:
                merged[key] = row
        for key, row in merged.items():
            candidate = by_url.get((poi.pk, key))
            is_current = bool(current_url) and (
                row.image_url == current_url or (own is not None and key == own.image_url)
            )
            yield _export_row(row, candidate, key, is_current, current_url, origin, absolute)


def _export_row(row, candidate, image_url, is_current, current_url, origin, absolute):
    def url(value: str) -> str:  # a site path made absolute; anything else as stored
        return absolute(value) if value.startswith("/") else value

    # The current image: where it came from; a candidate: the pipeline's Commons search.
    image_origin = ORIGIN_NAMES.get(origin, origin) if is_current else "pipeline"
    return {
        "poi_id": row.poi_id,
        "poi_name": row.poi.name,
        "city": row.poi.city.name,
        "image_url": url(image_url),
        "thumbnail_url": url(candidate.thumb_url if candidate else row.thumbnail_url),
        "current_image_url": url(current_url) if is_current else "",
        "label": row.label,
        "aesthetic_score": row.aesthetic_score,
        "model_name": row.model_name or (candidate.model_name if candidate else ""),
        "candidate_id": candidate.pk if candidate else None,
        "sha1": candidate.sha1 if candidate else "",
        "width": candidate.width if candidate else None,
        "height": candidate.height if candidate else None,
        "search_rank": candidate.search_rank if candidate else None,
        "source": row.source,
        "image_origin": image_origin,
        "labelled_by": row.labelled_by.get_username() if row.labelled_by else "",
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
