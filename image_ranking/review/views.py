"""Dashboard views: thin function views over the selectors and services.

Every action is a POST form that works twice: with htmx it answers with only the affected
fragment (plus the counts and a status line swapped out of band); without JavaScript it
redirects back to the page the form came from, filters kept, with a message. GET never
changes anything; bad ids are 404, bad parameters 400, refused actions 409, and nothing is
changed then.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.contrib.admin.views.decorators import staff_member_required
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.template.defaultfilters import pluralize
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from cities.models import City, PointOfInterest
from image_ranking.models import Candidate, RankingRun, Scope
from image_ranking.review import (
    bootstrap,
    bulk,
    calibration,
    labels,
    live,
    rendering,
    runpanel,
    selectors,
)
from image_ranking.review.answers import (
    answer_card,
    answer_panel,
    answer_tile,
    bad_request,
    candidate_or_answer,
    card_html,
    error,
    page_url,
    post_filters,
    refused_card,
    return_to_query,
)
from image_ranking.review.forms import (
    SEARCH_MAX,
    BootstrapForm,
    FilterForm,
    LabelForm,
    ThresholdForm,
    filters_from_return_to,
)
from image_ranking.review.selectors import Filters

logger = logging.getLogger(__name__)

LABELS_BOOTSTRAPPED_EVENT = "labelsBootstrapped"

# --- Pages ----------------------------------------------------------------------------------

TILE_SIZES = {"s": "Small", "m": "Medium", "l": "Large"}
TILE_SIZE_COOKIE = "ir_tiles"  # set by dashboard.js when the curator picks a size


def tile_size(request: HttpRequest) -> str:
    """The tile size the curator chose last (remembered in a cookie), rendered by the server so
    the page never jumps from one size to another."""
    size = request.COOKIES.get(TILE_SIZE_COOKIE, "")
    return size if size in TILE_SIZES else "m"


@staff_member_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    form = FilterForm(request.GET)
    if not form.is_valid():
        return bad_request(form)
    filters = form.filters()
    cities, poi_lists, lists_left_out = selectors.filter_options(filters.city_id, filters.list_id)
    if filters.city_id and filters.city_id not in {c.pk for c in cities}:
        return HttpResponseBadRequest("Unknown city.", content_type="text/plain")
    if filters.list_id and filters.list_id not in {pl.pk for pl in poi_lists}:
        return HttpResponseBadRequest("Unknown list.", content_type="text/plain")
    threshold = calibration.current_threshold()
    header = selectors.counts(filters.city_id, filters.list_id)
    page, cards = selectors.page_of_cards(filters, threshold, header)
    return_to = return_to_query(filters)
    watch = live.Watch(tuple(c.poi.pk for c in cards))
    run_panel = runpanel.panel(live.latest_run(), watch, runpanel.page_states(cards), return_to)
    context = {
        "filters": filters,
        "return_to": return_to,
        "search_max": SEARCH_MAX,
        "search_clipped": form.search_clipped,
        "tile_size": tile_size(request),
        "tile_sizes": TILE_SIZES.items(),
        "view_query": urlencode(
            {k: v for k, v in filters.query().items() if k not in ("page", "per_page", "model")}
        ),
        "report_query": urlencode(
            {k: v for k, v in filters.query().items() if k in ("city", "list")}
        ),
        "cities": cities,
        "poi_lists": poi_lists,
        "lists_left_out": lists_left_out,
        "statuses": selectors.STATUSES,
        "sorts": {value: label for value, (label, _) in selectors.SORTS.items()},
        "per_page_choices": selectors.PER_PAGE_CHOICES,
        "counts": header,
        "page": page,
        "cards": cards,
        "cards_html": rendering.render_cards(request, cards, return_to),
        "page_pois": ",".join(str(pk) for pk in watch.poi_ids),
        "prev_url": page_url(Filters(**{**filters.__dict__, "page": page.number - 1}))
        if page.has_previous
        else "",
        "next_url": page_url(Filters(**{**filters.__dict__, "page": page.number + 1}))
        if page.has_next
        else "",
        "threshold": threshold,
        "calibration_model": calibration.model_name(),
        "models": calibration.model_choices(),
        "scopes": Scope.choices,
        # The panel sits in the closed drawer: fetched when it opens, unless the URL picks a model.
        "calibration": calibration.calibrate(filters.model) if filters.model else None,
        "undo_depth": labels.undo_depth(request.session),
        **run_panel.context(),
    }
    return render(request, "image_ranking/image_ranking.html", context)


@staff_member_required
@require_GET
def poi_card(request: HttpRequest, poi_id: int) -> HttpResponse:
    """One card, for a card that follows its own re-rank (`?run=`, swept on each poll so a
    lost task still ends it)."""
    from image_ranking.runs.sweep import sweep_run

    run_id = request.GET.get("run", "")
    if run_id and not run_id.isdigit():
        return HttpResponseBadRequest("Bad run id.", content_type="text/plain")
    if not PointOfInterest.objects.filter(pk=poi_id).exists():
        return HttpResponse("No such POI.", status=404, content_type="text/plain")
    run = RankingRun.objects.filter(pk=int(run_id)).first() if run_id else None
    if run is not None and run.is_active:
        sweep_run(run)
    card = selectors.one_card(poi_id, calibration.current_threshold())
    if card is None:
        return HttpResponse("No such POI.", status=404, content_type="text/plain")
    filters = filters_from_return_to(request.GET.get("return_to", ""))
    return HttpResponse(card_html(request, card, filters))


# --- Labels ---------------------------------------------------------------------------------


def _label_message(change: labels.LabelChange, label: str | None) -> str:
    return "Label cleared." if label is None else f"Marked {label}."


@staff_member_required
@require_POST
def label_candidate(request: HttpRequest, candidate_id: int) -> HttpResponse:
    candidate, answer = candidate_or_answer(request, candidate_id)
    if answer:
        return answer
    form = LabelForm(request.POST)
    if not form.is_valid():
        return bad_request(form)
    change = labels.label_candidate(candidate, form.value(), user=request.user)
    labels.push_undo(request.session, change)
    return answer_tile(
        request, candidate.poi_id, change.image_url, _label_message(change, form.value())
    )


@staff_member_required
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
    labels.push_undo(request.session, change)
    return answer_tile(request, poi.pk, change.image_url, _label_message(change, form.value()))


@staff_member_required
@require_POST
def undo_label(request: HttpRequest) -> HttpResponse:
    """Take back the last action: one label (answered with its tile) or a bulk action's
    group of labels (answered with the POI's card, see `bulk.undo_group`).

    After "Use this image" the last action's undoable part is its good label: the label goes
    and the message says the image stays (the file it replaced is gone), see `use_candidate`."""
    step = labels.pop_undo(request.session)
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


# --- Images and ranking ---------------------------------------------------------------------


# How long "Use this image" may wait in the web request for a media download slot; longer
# (Commons asked every worker to wait, the slots are busy) and a background task does it.
USE_NOW_MAX_WAIT = 2.0


@staff_member_required
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
    from image_ranking.commons.downloads import DownloadError
    from image_ranking.pipeline import choice
    from image_ranking.pipeline.storage import StorageError
    from image_ranking.runs.service import RunAlreadyActive, start_use

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
    labels.push_undo(request.session, labels.label_chosen_candidate(candidate, user=request.user))
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


@staff_member_required
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
    from image_ranking.runs.service import RunAlreadyActive, start_run

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


@staff_member_required
@require_http_methods(["GET", "POST"])
def set_search_query(request: HttpRequest, poi_id: int) -> HttpResponse:
    """GET: the query form of the card (fetched when a curator opens "Searched for").
    POST: keep a curator's query or File: titles for the POI, then re-rank it with them."""
    from image_ranking.review.search_query import SearchQueryForm, save_search

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


@staff_member_required
@require_POST
def apply_fallback(request: HttpRequest, poi_id: int) -> HttpResponse:
    from image_ranking.pipeline.fallback import apply_category_fallback
    from image_ranking.pipeline.storage import StorageError

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


# --- Calibration, bootstrap, export ---------------------------------------------------------


@staff_member_required
@require_GET
def calibration_panel(request: HttpRequest) -> HttpResponse:
    """The calibration panel alone: fetched when the curator opens the drawer."""
    form = FilterForm(request.GET)
    if not form.is_valid():
        return bad_request(form)
    filters = form.filters()
    context = {
        "calibration": calibration.calibrate(filters.model),
        "models": calibration.model_choices(),
        "filters": filters,
        "return_to": return_to_query(filters),
    }
    return render(request, "image_ranking/_calibration.html", context)


def _calibration_answer(request: HttpRequest, model: str, message: str) -> HttpResponse:
    return answer_panel(
        request,
        "image_ranking/_calibration.html",
        {"calibration": calibration.calibrate(model), "models": calibration.model_choices()},
        message,
    )


@staff_member_required
@require_POST
def adopt_threshold(request: HttpRequest) -> HttpResponse:
    """Adopt a threshold for the next runs of the model the panel shows."""
    form = ThresholdForm(request.POST)
    if not form.is_valid():
        return bad_request(form)
    model = form.cleaned_data["model"] or calibration.model_name()
    try:
        adopted = calibration.adopt_threshold(
            form.cleaned_data["threshold"], model=model, user=request.user
        )
    except calibration.NotEnoughLabels as exc:
        return error(request, f"No threshold adopted: {exc}.")
    response = _calibration_answer(
        request,
        model,
        f"Threshold {adopted.threshold:.2f} adopted for the next {model} runs.",
    )
    if request.htmx and model == calibration.model_name():
        response.content += render_to_string(
            "image_ranking/_threshold.html",
            {"oob": True, "threshold": adopted.threshold, "calibration_model": model},
        ).encode()
    return response


@staff_member_required
@require_POST
def bootstrap_labels(request: HttpRequest) -> HttpResponse:
    form = BootstrapForm(request.POST)
    if not form.is_valid():
        return bad_request(form)
    city_id = form.cleaned_data["city"]
    if city_id and not City.objects.filter(pk=city_id).exists():
        return HttpResponseBadRequest("Unknown city.", content_type="text/plain")
    result = bootstrap.bootstrap(city_id)
    message = (
        f"Bootstrap: {result.good} good and {result.bad} bad label{pluralize(result.bad)} added "
        f"from {result.pois} curated POI{pluralize(result.pois)}; existing labels kept."
    )
    if result.removed:
        message += (
            f" {result.removed} bootstrap bad label{pluralize(result.removed)} of curated "
            "images removed."
        )
    response = _calibration_answer(request, post_filters(request).model, message)
    if request.htmx:  # the list reloads itself, so the new labels show on the cards
        trigger_client_event(response, LABELS_BOOTSTRAPPED_EVENT, {"good": result.good})
    return response


@staff_member_required
@require_GET
def export_labels(request: HttpRequest, fmt: str) -> StreamingHttpResponse:
    rows = labels.export_rows(absolute=request.build_absolute_uri)
    if fmt == "csv":
        body, content_type = labels.csv_lines(rows), "text/csv; charset=utf-8"
    else:
        body, content_type = labels.jsonl_lines(rows), "application/x-ndjson; charset=utf-8"
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="image-training-labels.{fmt}"'
    return response
