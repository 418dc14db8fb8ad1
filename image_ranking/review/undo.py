"""The session's undo stack: one entry per curator action, newest last, at most UNDO_DEPTH
of them. `u` takes back the last one: one label, or every label of one bulk action ("Only
this", a selection's label) at once. A single change is stored as a dict (the only shape
stored before groups existed, so older sessions still pop), a group as a list of dicts,
oldest change first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from image_ranking.models import ImageTrainingData
from image_ranking.review import labels
from image_ranking.review.labels import LabelChange

UNDO_KEY = "image_ranking_undo"
UNDO_DEPTH = 50


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
        labels.undo(change)
    return taken
