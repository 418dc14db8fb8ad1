"""Image views: "Use this image", Re-rank, a curator's better query, the category fallback.
Each answers with the POI's card (htmx) or a redirect back (see `review.answers`)."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_http_methods, require_POST

from cities.models import PointOfInterest
from image_ranking.commons.downloads import DownloadError
from image_ranking.models import Candidate, Scope
from image_ranking.pipeline import choice
from image_ranking.pipeline.fallback import apply_category_fallback
from image_ranking.pipeline.storage import StorageError
from image_ranking.review import calibration, labels, rendering, selectors, undo
from image_ranking.review.access import staff_only
from image_ranking.review.answers import (
    answer_card,
    bad_request,
    candidate_or_answer,
    error,
    refused_card,
    return_to_query,
)
from image_ranking.review.forms import filters_from_return_to
from image_ranking.review.search_query import SearchQueryForm, save_search
from image_ranking.runs.service import RunAlreadyActive, start_run, start_use

logger = logging.getLogger(__name__)


# How long "Use this image" may wait in the web request for a media download slot; longer
# (Commons asked every worker to wait, the slots are busy) and a background task does it.
USE_NOW_MAX_WAIT = 2.0


@staff_only
@require_POST
def use_candidate(request: HttpRequest, candidate_id: int) -> HttpResponse:
    """Store this candidate as the POI's image (the pipeline's storage path) and label it good.

    Refused (409, nothing changed, nothing downloaded) when the file or scene is already the
    current image of another POI of the city: one photo, one place. The check and the store
    happen under the POI's claim (`pipeline.choice`). When the download would have to wait
    for Commons, the curator gets an answer at once and a background task stores it (a
    one-POI run the card follows, like a re-rank).

    The good label is pushed as an undo step, so `u` right after takes back this action's
    label, not an older action on some other image a curator no longer has in mind; the undo
    message says the image stays, since the file it replaced cannot come back."""
    candidate, answer = candidate_or_answer(request, candidate_id)
    if answer:
        return answer
    taken = choice.taken_by(candidate)
    if taken is not None:
        return _not_used(request, candidate, taken)
    message = f"Now using “{candidate.title}”."
    try:
        choice.use_candidate(candidate, user=request.user, max_wait=USE_NOW_MAX_WAIT)
    except choice.NotUsed as exc:
        return _not_used(request, candidate, exc.conflict)
    except DownloadError as exc:
        if exc.reason != "rate_limited":
            return _could_not_use(request, candidate, exc)
        try:
            start_use(candidate, user=request.user)
        except RunAlreadyActive as busy:
            return error(request, f"A re-rank of this POI is already going (run {busy.run.pk}).")
        message = f"Commons asks us to wait: “{candidate.title}” will be stored in a moment."
    except StorageError as exc:
        return _could_not_use(request, candidate, exc)
    # Choosing an image is an explicit "good" from the curator.
    undo.push_undo(request.session, labels.label_chosen_candidate(candidate, user=request.user))
    return answer_card(request, candidate.poi_id, message)


def _not_used(request: HttpRequest, candidate: Candidate, taken) -> HttpResponse:
    """Refused: its card as it is now, with why (never a page swap)."""
    return refused_card(
        request,
        candidate.poi_id,
        f"Not used: “{candidate.title}” is {taken.reason()}. "
        "One photo, one place: choose another image for this POI.",
    )


def _could_not_use(request: HttpRequest, candidate: Candidate, exc: Exception) -> HttpResponse:
    logger.warning("Use image %s for POI %s failed: %s", candidate.pk, candidate.poi_id, exc)
    return answer_card(request, candidate.poi_id, f"Could not use this image: {exc}", level="error")


@staff_only
@require_POST
def rerank_poi(request: HttpRequest, poi_id: int) -> HttpResponse:
    """Re-rank one POI: a run of its own (Kind.POI), followed by the card, not the panel."""
    poi = get_object_or_404(PointOfInterest, pk=poi_id)
    if not poi.lists.exists():
        return error(request, "Only POIs in a list are ranked.")
    return _rerank(request, poi, "Re-rank queued.")


def _rerank(
    request: HttpRequest, poi: PointOfInterest, message: str, busy: str = ""
) -> HttpResponse:
    """Start the POI's own one-POI run and answer with its card (409, `busy` first, when one
    is going)."""
    try:
        start_run(
            scope=Scope.ALL,
            poi_ids=[poi.pk],
            threshold=calibration.current_threshold(),
            user=request.user,
        )
    except RunAlreadyActive as exc:
        return error(request, f"{busy}A re-rank of this POI is already going (run {exc.run.pk}).")
    return answer_card(request, poi.pk, message)


@staff_only
@require_http_methods(["GET", "POST"])
def set_search_query(request: HttpRequest, poi_id: int) -> HttpResponse:
    """GET: the query form of the card (fetched when a curator opens "Searched for").
    POST: keep a curator's query or File: titles for the POI, then re-rank it with them."""
    if request.method == "GET":
        card = selectors.one_card(poi_id, calibration.current_threshold())
        if card is None:
            return HttpResponse("No such POI.", status=404, content_type="text/plain")
        filters = filters_from_return_to(request.GET.get("return_to", ""))
        return HttpResponse(rendering.render_query_form(request, card, return_to_query(filters)))
    poi = get_object_or_404(PointOfInterest, pk=poi_id)
    if not poi.lists.exists():
        return error(request, "Only POIs in a list are ranked.")
    form = SearchQueryForm(request.POST)
    if not form.is_valid():
        return bad_request(form)
    save_search(poi, form.cleaned_data["query"], form.cleaned_data["titles"])
    return _rerank(request, poi, "Query saved; re-rank queued.", busy="Query saved. ")


@staff_only
@require_POST
def apply_fallback(request: HttpRequest, poi_id: int) -> HttpResponse:
    poi = get_object_or_404(PointOfInterest, pk=poi_id)
    try:
        applied = apply_category_fallback(poi)
    except StorageError as exc:
        return answer_card(request, poi.pk, f"Fallback failed: {exc}", level="error")
    if not applied:
        reason = (
            "it already has an image"
            if poi.image_file
            else f"no fallback image for “{poi.category}”"
        )
        return answer_card(request, poi.pk, f"No fallback applied: {reason}.", level="warning")
    return answer_card(
        request, poi.pk, "Category fallback image applied; the POI still needs a photo."
    )
