"""Training labels: label, relabel, clear, undo, bootstrap and export.

One `ImageTrainingData` row per (POI, image URL); relabelling updates it. Every change
returns the state it replaced, so the dashboard can undo the last label (kept per session).
Bootstrap follows the owner's plan: a POI's current curated image is "good" and the
alternatives fetched for it are "bad", and it never overwrites an existing label.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from cities.models import PoiList, PointOfInterest
from image_ranking.models import Candidate, ImageTrainingData, PoiRanking

Label = ImageTrainingData.Label
UNDO_KEY = "image_ranking_undo"
UNDO_DEPTH = 50


@dataclass
class LabelState:
    label: str
    source: str
    aesthetic_score: float | None
    thumbnail_url: str
    labelled_by_id: int | None


@dataclass
class LabelChange:
    """What one label action replaced: enough to put it back."""

    poi_id: int
    image_url: str
    previous: LabelState | None

    def to_session(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_session(cls, data: dict[str, Any]) -> LabelChange:
        prev = data.get("previous")
        return cls(
            poi_id=int(data["poi_id"]),
            image_url=str(data["image_url"]),
            previous=LabelState(**prev) if prev else None,
        )


def current_image_url(poi: PointOfInterest) -> str | None:
    """The URL a label of the POI's current image is stored under (its media URL)."""
    return poi.image_file.url if poi.image_file else None


def _state(row: ImageTrainingData) -> LabelState:
    return LabelState(
        label=row.label,
        source=row.source,
        aesthetic_score=row.aesthetic_score,
        thumbnail_url=row.thumbnail_url,
        labelled_by_id=row.labelled_by_id,
    )


@transaction.atomic
def set_label(
    poi: PointOfInterest,
    *,
    image_url: str,
    label: str | None,
    thumbnail_url: str = "",
    score: float | None = None,
    user: Any = None,
) -> LabelChange:
    """Label an image of a POI good or bad (None clears the label); a curator's action."""
    if label is not None and label not in Label.values:
        raise ValueError(f"label must be one of {', '.join(Label.values)}")
    row = ImageTrainingData.objects.select_for_update().filter(poi=poi, image_url=image_url).first()
    change = LabelChange(poi.pk, image_url, _state(row) if row else None)
    user_id = user.pk if getattr(user, "is_authenticated", False) else None
    if label is None:
        if row:
            row.delete()
        return change
    if row is None:
        try:
            with transaction.atomic():  # savepoint: another tab may insert it right now
                row = ImageTrainingData.objects.create(
                    poi=poi, image_url=image_url, label=label, labelled_by_id=user_id
                )
        except IntegrityError:
            row = ImageTrainingData.objects.select_for_update().get(poi=poi, image_url=image_url)
    row.label = label
    row.source = ImageTrainingData.Source.CURATOR
    row.thumbnail_url = thumbnail_url or row.thumbnail_url
    if score is not None:
        row.aesthetic_score = score
    row.labelled_by_id = user_id
    row.save()
    return change


def label_candidate(candidate: Candidate, label: str | None, *, user: Any = None) -> LabelChange:
    return set_label(
        candidate.poi,
        image_url=candidate.image_url,
        thumbnail_url=candidate.thumb_url,
        score=candidate.score,
        label=label,
        user=user,
    )


def label_current_image(
    poi: PointOfInterest, label: str | None, *, user: Any = None
) -> LabelChange:
    url = current_image_url(poi)
    if url is None:
        raise ValueError("this POI has no image to label")
    winner_score = _stored_winner_score(poi)
    return set_label(
        poi, image_url=url, thumbnail_url=url, score=winner_score, label=label, user=user
    )


def _stored_winner_score(poi: PointOfInterest) -> float | None:
    """The score of the current image when the pipeline (or a curator's pick) stored a winner."""
    ranking = PoiRanking.objects.filter(poi=poi).first()
    if ranking is None or ranking.status != PoiRanking.Status.UPDATED or ranking.uses_fallback:
        return None
    return ranking.best_score


@transaction.atomic
def undo(change: LabelChange) -> None:
    """Put back what a label action replaced."""
    qs = ImageTrainingData.objects.filter(poi_id=change.poi_id, image_url=change.image_url)
    if change.previous is None:
        qs.delete()
        return
    if not PointOfInterest.objects.filter(pk=change.poi_id).exists():
        return
    prev = change.previous
    ImageTrainingData.objects.update_or_create(
        poi_id=change.poi_id,
        image_url=change.image_url,
        defaults={
            "label": prev.label,
            "source": prev.source,
            "aesthetic_score": prev.aesthetic_score,
            "thumbnail_url": prev.thumbnail_url,
            "labelled_by_id": prev.labelled_by_id,
        },
    )


# --- Undo stack in the session --------------------------------------------------------------


def push_undo(session, change: LabelChange) -> None:
    stack = list(session.get(UNDO_KEY, []))
    stack.append(change.to_session())
    session[UNDO_KEY] = stack[-UNDO_DEPTH:]


def pop_undo(session) -> LabelChange | None:
    stack = list(session.get(UNDO_KEY, []))
    if not stack:
        return None
    data = stack.pop()
    session[UNDO_KEY] = stack
    return LabelChange.from_session(data)


def undo_depth(session) -> int:
    return len(session.get(UNDO_KEY, []))


# --- Bootstrap ------------------------------------------------------------------------------


def bootstrap_pois(city_id: int | None = None) -> QuerySet[PointOfInterest]:
    """POIs in lists whose current image was curated (not stored by the pipeline or fallback)."""
    in_list = PoiList.pois.through.objects.filter(pointofinterest_id=OuterRef("pk"))
    pipeline_image = PoiRanking.objects.filter(poi_id=OuterRef("pk")).filter(
        Q(status=PoiRanking.Status.UPDATED) | Q(uses_fallback=True)
    )
    pois = (
        PointOfInterest.objects.filter(Exists(in_list))
        .exclude(Q(image_file="") | Q(image_file__isnull=True))
        .exclude(Exists(pipeline_image))
    )
    if city_id is not None:
        pois = pois.filter(city_id=city_id)
    return pois


@transaction.atomic
def bootstrap(city_id: int | None = None) -> dict[str, int]:
    """Create bootstrap labels; existing labels (curator or earlier bootstrap) stay as they are.

    Ineligible candidates (too far away) and ones that failed to score are left out: they say
    nothing about how an image looks.
    """
    pois = list(bootstrap_pois(city_id).only("pk", "image_file", "city_id", "name"))
    existing = set(
        ImageTrainingData.objects.filter(poi__in=pois).values_list("poi_id", "image_url")
    )
    rows: list[ImageTrainingData] = []
    for poi in pois:
        url = current_image_url(poi)
        if url and (poi.pk, url) not in existing:
            rows.append(
                ImageTrainingData(
                    poi=poi,
                    image_url=url,
                    thumbnail_url=url,
                    label=Label.GOOD,
                    source=ImageTrainingData.Source.BOOTSTRAP,
                )
            )
            existing.add((poi.pk, url))
    candidates = Candidate.objects.filter(poi__in=pois, eligible=True, error="").only(
        "poi_id", "image_url", "thumb_url", "score"
    )
    for cand in candidates:
        if (cand.poi_id, cand.image_url) in existing:
            continue
        existing.add((cand.poi_id, cand.image_url))
        rows.append(
            ImageTrainingData(
                poi_id=cand.poi_id,
                image_url=cand.image_url,
                thumbnail_url=cand.thumb_url,
                label=Label.BAD,
                aesthetic_score=cand.score,
                source=ImageTrainingData.Source.BOOTSTRAP,
            )
        )
    # ignore_conflicts: a curator labelling at this very moment keeps their label.
    ImageTrainingData.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    good = sum(1 for r in rows if r.label == Label.GOOD)
    return {"pois": len(pois), "good": good, "bad": len(rows) - good}


# --- Export ---------------------------------------------------------------------------------

EXPORT_FIELDS = [
    "poi_id",
    "poi_name",
    "city",
    "image_url",
    "thumbnail_url",
    "label",
    "aesthetic_score",
    "source",
    "labelled_by",
    "created_at",
    "updated_at",
]


def export_rows() -> Iterator[dict[str, Any]]:
    """Every label, oldest first, streamed from the database."""
    qs = (
        ImageTrainingData.objects.select_related("poi__city", "labelled_by")
        .order_by("pk")
        .iterator(chunk_size=2000)
    )
    for row in qs:
        yield {
            "poi_id": row.poi_id,
            "poi_name": row.poi.name,
            "city": row.poi.city.name,
            "image_url": row.image_url,
            "thumbnail_url": row.thumbnail_url,
            "label": row.label,
            "aesthetic_score": row.aesthetic_score,
            "source": row.source,
            "labelled_by": row.labelled_by.get_username() if row.labelled_by else "",
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }


def csv_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _cell(value: Any) -> Any:
    """Empty for None; text that a spreadsheet would run as a formula gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def jsonl_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"
