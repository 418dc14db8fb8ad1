"""Training labels: label, relabel, clear, and put back what a change replaced.

One `ImageTrainingData` row per (POI, image URL); relabelling updates it. Every change
returns the state it replaced, so the dashboard can undo it (the session's stack of actions:
`review.undo`; bootstrap: `review.bootstrap`; the export: `review.label_export`).
A label records the model and the score it was given against: the score the winner choice
compares with the threshold (`Candidate.rank_score`, else the model's score), so the
calibration panel's threshold means the same as a run's.

The category fallback image is not a photo of its POI: it is never labelled
(`label_current_image` refuses it) and the export leaves out labels of it made before.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from django.db import IntegrityError, transaction

from cities.models import PointOfInterest
from image_ranking.models import Candidate, ImageTrainingData, PoiRanking, RankablePoi

Label = ImageTrainingData.Label


def rank_score(candidate: Candidate) -> float | None:
    """The score the winner choice compares with the threshold: after the blur penalty when
    the pipeline recorded one, else the model's score. A label records this one."""
    return candidate.rank_score if candidate.rank_score is not None else candidate.score


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
    # USE: the automatic good label of "Use this image" (its undo takes back only the label;
    # `title` names the candidate for the undo's message). "" for a label button's change.
    action: str = ""
    title: str = ""

    def to_session(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_session(cls, data: dict[str, Any]) -> LabelChange:
        prev = data.get("previous")
        return cls(
            poi_id=int(data["poi_id"]),
            image_url=str(data["image_url"]),
            previous=LabelState(**prev) if prev else None,
            action=str(data.get("action", "")),
            title=str(data.get("title", "")),
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


USE = "use"  # LabelChange.action of "Use this image"


def label_chosen_candidate(candidate: Candidate, *, user: Any = None) -> LabelChange:
    """The good label "Use this image" gives the candidate it stored (a curator's explicit
    choice). Its change remembers that, so undoing it can say that only the label goes: the
    stored image stays, the file it replaced is gone."""
    change = label_candidate(candidate, Label.GOOD, user=user)
    change.action, change.title = USE, candidate.title
    return change


def uses_fallback(poi: PointOfInterest) -> bool:
    """The POI's current image is its category's fallback image, not a photo of it (the one
    definition: `RankablePoi.objects.uses_fallback`)."""
    return RankablePoi.objects.filter(pk=poi.pk).uses_fallback().exists()


def label_current_image(
    poi: PointOfInterest, label: str | None, *, user: Any = None
) -> LabelChange:
    url = current_image_url(poi)
    if url is None:
        raise ValueError("this POI has no image to label")
    if uses_fallback(poi):
        raise ValueError("the category fallback image is not a photo of this POI")
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
    if ranking is None or ranking.image_origin not in PoiRanking.STORED_FROM_CANDIDATE:
        return None
    return Candidate.objects.filter(poi=poi, is_winner=True).first()


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
