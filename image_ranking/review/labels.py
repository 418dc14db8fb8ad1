"""Training labels: label, relabel, clear, undo and export (bootstrap: `review.bootstrap`).

One `ImageTrainingData` row per (POI, image URL); relabelling updates it. Every change
returns the state it replaced, so the dashboard can undo the last label (kept per session).
A label records the model and the score it was given against: the score the winner choice
compares with the threshold (`Candidate.rank_score`, else the model's score), so the
calibration panel's threshold means the same as a run's.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from django.db import IntegrityError, transaction

from cities.models import PointOfInterest
from image_ranking.models import Candidate, ImageTrainingData, PoiRanking
from image_ranking.review.cards import rank_score

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
    model_name: str = ""  # absent from undo entries saved before models were recorded


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
        model_name=row.model_name,
    )


@transaction.atomic
def set_label(
    poi: PointOfInterest,
    *,
    image_url: str,
    label: str | None,
    thumbnail_url: str = "",
    score: float | None = None,
    model_name: str = "",
    user: Any = None,
) -> LabelChange:
    """Label an image of a POI good or bad (None clears the label); a curator's action.
    `score` and `model_name` say what the image was scored (None/"" keep what was there)."""
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
        row.model_name = model_name or row.model_name
    row.labelled_by_id = user_id
    row.save()
    return change


def label_candidate(candidate: Candidate, label: str | None, *, user: Any = None) -> LabelChange:
    return set_label(
        candidate.poi,
        image_url=candidate.image_url,
        thumbnail_url=candidate.thumb_url,
        score=rank_score(candidate),
        model_name=candidate.model_name,
        label=label,
        user=user,
    )


def label_current_image(
    poi: PointOfInterest, label: str | None, *, user: Any = None
) -> LabelChange:
    url = current_image_url(poi)
    if url is None:
        raise ValueError("this POI has no image to label")
    source = current_image_candidate(poi)
    return set_label(
        poi,
        image_url=url,
        thumbnail_url=url,
        score=rank_score(source) if source else None,
        model_name=source.model_name if source else "",
        label=label,
        user=user,
    )


def current_image_candidate(poi: PointOfInterest) -> Candidate | None:
    """The candidate the current image was stored from (the pipeline's winner or a curator's
    choice), for its score; None for a curated image from elsewhere or a fallback."""
    ranking = PoiRanking.objects.filter(poi=poi).first()
    if ranking is None or ranking.image_origin not in STORED_FROM_CANDIDATE:
        return None
    return Candidate.objects.filter(poi=poi, is_winner=True).first()


STORED_FROM_CANDIDATE = (PoiRanking.Origin.PIPELINE, PoiRanking.Origin.CURATOR)


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
            "model_name": prev.model_name,
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


# --- Export ---------------------------------------------------------------------------------

EXPORT_FIELDS = [
    "poi_id",
    "poi_name",
    "city",
    "image_url",
    "thumbnail_url",
    "label",
    "aesthetic_score",
    "model_name",
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
            "model_name": row.model_name,
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
