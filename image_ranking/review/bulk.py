"""Faster labelling: "this one good, the POI's other candidates bad" in one action.

A curator reviewing a POI often sees at once which candidate is right; one POST labels it
good and the rest bad through `labels.set_label` (the same rows, scores and models as one
label at a time). The changes go on the session's undo stack as one group, so one `u`
takes the whole action back (every label as it was before, last first, in one transaction)
and answers with the POI's card, focus on the candidate that had been marked good.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from image_ranking.models import Candidate
from image_ranking.review import labels, undo
from image_ranking.review.access import staff_only
from image_ranking.review.answers import (  # noqa: F401 (FOCUS_HEADER: tests)
    FOCUS_HEADER,
    answer_card,
    answer_cards,
    candidate_or_answer,
)


def good_and_others_bad(candidate: Candidate, *, user: Any = None) -> list[labels.LabelChange]:
    """Label `candidate` good and every other candidate of its POI bad, except the one the
    POI shows now (a curator's or the pipeline's choice is never labelled bad by a bulk
    action: it would contradict the image in use). Returns the changes, oldest first."""
    poi = candidate.poi
    in_use = bool(poi.image_file)
    changes = [labels.label_candidate(candidate, "good", user=user)]
    others = Candidate.objects.filter(poi=poi).exclude(pk=candidate.pk).order_by("search_rank")
    for other in others:
        if in_use and other.is_winner:
            continue
        other.poi = poi  # label_candidate reads it; no query per candidate
        changes.append(labels.label_candidate(other, "bad", user=user))
    return changes


@staff_only
@require_POST
def good_others_bad(request: HttpRequest, candidate_id: int) -> HttpResponse:
    """POST only (CSRF like every form). With htmx: the POI's card, the counts and the
    calibration panel (labels changed); without, a redirect back with a message."""
    candidate, answer = candidate_or_answer(request, candidate_id)
    if answer:
        return answer
    changes = good_and_others_bad(candidate, user=request.user)
    undo.push_undo_group(request.session, changes)
    bad = len(changes) - 1
    message = f"Marked “{candidate.title}” good and {bad} other{'s' if bad != 1 else ''} bad."
    return answer_card(request, candidate.poi_id, message, labels_changed=True)


def undo_group(request: HttpRequest, step: undo.UndoStep) -> HttpResponse:
    """Take back a bulk action (one undo step): every label as it was, and the cards of its
    POIs, focus on the tile of the image the action changed first."""
    taken = undo.undo_group(step.changes)
    return answer_cards(
        request,
        step.poi_ids,
        undone_message(taken),
        labels_changed=True,
        focus_url=step.changes[0].image_url,
    )


def undone_message(taken: dict[str, int]) -> str:
    """ "Undone: 1 good and 4 bad labels taken back." (good first, then bad)."""
    parts = [f"{taken[label]} {label}" for label in labels.Label.values if taken.get(label)]
    if not parts:
        return "Undone: those labels were already gone."
    total = sum(taken.values())
    return f"Undone: {' and '.join(parts)} label{'s' if total != 1 else ''} taken back."
