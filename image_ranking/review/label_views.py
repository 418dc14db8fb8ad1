"""Label views: Good, Bad and Clear on one image, undo of the last action, and the labels'
export. Each answers with its tile (htmx) or a redirect back (see `review.answers`)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET, require_POST

from cities.models import PointOfInterest
from image_ranking.review import bulk, label_export, labels, tables, undo
from image_ranking.review.access import staff_only
from image_ranking.review.answers import (
    answer_tile,
    bad_request,
    candidate_or_answer,
    error,
    refused_card,
)
from image_ranking.review.forms import LabelForm


def _label_message(change: labels.LabelChange, label: str | None) -> str:
    return "Label cleared." if label is None else f"Marked {label}."


@staff_only
@require_POST
def label_candidate(request: HttpRequest, candidate_id: int) -> HttpResponse:
    candidate, answer = candidate_or_answer(request, candidate_id)
    if answer:
        return answer
    form = LabelForm(request.POST)
    if not form.is_valid():
        return bad_request(form)
    change = labels.label_candidate(candidate, form.value(), user=request.user)
    undo.push_undo(request.session, change)
    return answer_tile(
        request, candidate.poi_id, change.image_url, _label_message(change, form.value())
    )


@staff_only
@require_POST
def label_current(request: HttpRequest, poi_id: int) -> HttpResponse:
    poi = get_object_or_404(PointOfInterest, pk=poi_id)
    form = LabelForm(request.POST)
    if not form.is_valid():
        return bad_request(form)
    if not poi.image_file:
        return refused_card(request, poi.pk, "This POI has no image to label.")
    if labels.uses_fallback(poi):
        return refused_card(
            request,
            poi.pk,
            "The category fallback image is not a photo of this POI and cannot be labelled: "
            "give it a photo with “Use this image” or Re-rank.",
        )
    change = labels.label_current_image(poi, form.value(), user=request.user)
    undo.push_undo(request.session, change)
    return answer_tile(request, poi.pk, change.image_url, _label_message(change, form.value()))


@staff_only
@require_POST
def undo_label(request: HttpRequest) -> HttpResponse:
    """Take back the last action: one label (answered with its tile) or a bulk action's
    group of labels (answered with the POI's card, see `bulk.undo_group`).

    After "Use this image" the last action's undoable part is its good label: the label goes
    and the message says the image stays (the file it replaced is gone), see `use_candidate`."""
    step = undo.pop_undo(request.session)
    if step is None:
        return error(request, "Nothing to undo.")
    if step.group:
        return bulk.undo_group(request, step)
    (change,) = step.changes
    labels.undo(change)
    return answer_tile(request, change.poi_id, change.image_url, _undo_message(change))


def _undo_message(change: labels.LabelChange) -> str:
    if change.action == labels.USE:
        title = change.title or "this image"
        earlier = f" (its earlier {change.previous.label} label is back)" if change.previous else ""
        return (
            f"Undone: the good label of “{title}”{earlier}. "
            "The image stays: pick another with “Use this image”."
        )
    return "Undone: label restored." if change.previous else "Undone: label removed."


@staff_only
@require_GET
def export_labels(request: HttpRequest, fmt: str) -> StreamingHttpResponse:
    rows = label_export.export_rows(absolute=request.build_absolute_uri)
    return tables.download(rows, label_export.EXPORT_FIELDS, fmt, "image-training-labels")
