"""Training labels: label, relabel, clear, undo and export (bootstrap: `review.bootstrap`).

One `ImageTrainingData` row per (POI, image URL); relabelling updates it. Every change
returns the state it replaced, so the dashboard can undo the last action (kept per session):
one label, or a group of one POI's labels made by one action ("Only this"), undone at once.
A label records the model and the score it was given against: the score the winner choice
compares with the threshold (`Candidate.rank_score`, else the model's score), so the
calibration panel's threshold means the same as a run's.

The category fallback image is not a photo of its POI: it is never labelled
(`label_current_image` refuses it) and the export leaves out labels of it made before.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from cities.models import PointOfInterest
from image_ranking.models import Candidate, ImageTrainingData, PoiRanking, RankablePoi
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


# --- Undo stack in the session --------------------------------------------------------------
# The stack holds one entry per action, newest last, at most UNDO_DEPTH of them: a single
# change as a dict (the only shape stored before groups existed, so older sessions still
# pop), a group as a list of dicts, oldest change first.


@dataclass
class UndoStep:
    """One action to take back: its changes, oldest first; `group` for a bulk action."""

    changes: list[LabelChange]
    group: bool = False

    @property
    def poi_id(self) -> int:
        return self.changes[0].poi_id

    @property
    def poi_ids(self) -> list[int]:
        """The POIs the step changed, in the order it changed them."""
        return list(dict.fromkeys(change.poi_id for change in self.changes))


def _push(session, entry: dict[str, Any] | list[dict[str, Any]]) -> None:
    stack = list(session.get(UNDO_KEY, []))
    stack.append(entry)
    session[UNDO_KEY] = stack[-UNDO_DEPTH:]


def push_undo(session, change: LabelChange) -> None:
    _push(session, change.to_session())


def push_undo_group(session, changes: Iterable[LabelChange]) -> None:
    """One undo step for the changes of one action ("Only this" on one POI, or a label given
    to a selection across POIs): undone together, last first."""
    changes = list(changes)
    if not changes:
        return
    _push(session, [change.to_session() for change in changes])


def pop_undo(session) -> UndoStep | None:
    stack = list(session.get(UNDO_KEY, []))
    if not stack:
        return None
    entry = stack.pop()
    session[UNDO_KEY] = stack
    if isinstance(entry, list):
        return UndoStep([LabelChange.from_session(data) for data in entry], group=True)
    return UndoStep([LabelChange.from_session(entry)])


def undo_depth(session) -> int:
    """How many actions can be undone (a group counts once)."""
    return len(session.get(UNDO_KEY, []))


@transaction.atomic
def undo_group(changes: list[LabelChange]) -> dict[str, int]:
    """Put back what several changes replaced, last first, in one transaction. Returns how
    many labels of each kind were taken back (the labels the rows held before the undo)."""
    taken: dict[str, int] = {}
    for change in reversed(changes):
        row = (
            ImageTrainingData.objects.select_for_update()
            .filter(poi_id=change.poi_id, image_url=change.image_url)
            .values_list("label", flat=True)
            .first()
        )
        if row is not None:
            taken[row] = taken.get(row, 0) + 1
        undo(change)
    return taken


# --- Export ---------------------------------------------------------------------------------

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
            from image_ranking.review.bootstrap import file_sha1

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


def csv_lines(rows: Iterable[dict[str, Any]], fields: list[str] = EXPORT_FIELDS) -> Iterator[str]:
    """The rows as CSV for a spreadsheet: every text cell that it would run as a formula is
    escaped (`_cell`). Only here: `jsonl_lines` keeps the data exact for programs."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


# What a spreadsheet may read as the start of a formula (OWASP "CSV injection"): a POI name,
# a city or a Commons file name is text from elsewhere, and "=HYPERLINK(...)" would run.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """Empty for None; text that a spreadsheet would run as a formula gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def jsonl_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """One JSON object per row, the data exactly as stored: a training pipeline reads the
    titles and URLs, and a spreadsheet's escape would change them."""
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"
