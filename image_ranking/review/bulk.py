"""Faster labelling: "this one good, the POI's other candidates bad" in one action.

A curator reviewing a POI often sees at once which candidate is right; one POST labels it
good and the rest bad through `labels.set_label` (the same rows, scores and models as one
label at a time). Every change goes on the session's undo stack, so `u` takes the labels
back one by one, last first, and nothing else in the labels module had to change.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_POST

from image_ranking.models import Candidate
from image_ranking.review import calibration, labels, selectors
from image_ranking.review.answers import answer_card, card_html, oob, post_filters


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


@staff_member_required
@require_POST
def good_others_bad(request: HttpRequest, candidate_id: int) -> HttpResponse:
    """POST only (CSRF like every form). With htmx: the POI's card, the counts and the
    calibration panel (labels changed); without, a redirect back with a message."""
    candidate = get_object_or_404(Candidate.objects.select_related("poi"), pk=candidate_id)
    changes = good_and_others_bad(candidate, user=request.user)
    for change in changes:
        labels.push_undo(request.session, change)
    bad = len(changes) - 1
    message = f"Marked “{candidate.title}” good and {bad} other{'s' if bad != 1 else ''} bad."
    if not request.htmx:
        return answer_card(request, candidate.poi_id, message)
    filters = post_filters(request)
    card = selectors.one_card(candidate.poi_id, calibration.current_threshold())
    html = card_html(request, card, filters) if card else ""
    response = HttpResponse(html + oob(request, filters, message, "success", labels_changed=True))
    response["HX-Retarget"] = f"#poi-{candidate.poi_id}"
    response["HX-Reswap"] = "outerHTML"
    return response
