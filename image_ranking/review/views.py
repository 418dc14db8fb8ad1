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

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from cities.models import City, PointOfInterest
from image_ranking.models import Candidate, RankingRun, Scope
from image_ranking.review import bootstrap, calibration, labels, live, runpanel, selectors
from image_ranking.review.forms import (
    BootstrapForm,
    FilterForm,
    LabelForm,
    RunForm,
    ThresholdForm,
    filters_from_return_to,
)
from image_ranking.review.selectors import Filters

logger = logging.getLogger(__name__)

RUN_FINISHED_EVENT = "rankingRunFinished"
LABELS_BOOTSTRAPPED_EVENT = "labelsBootstrapped"


# --- Helpers --------------------------------------------------------------------------------


def _bad_request(form) -> HttpResponseBadRequest:
    errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
    return HttpResponseBadRequest(f"Bad parameters: {errors}", content_type="text/plain")


def _post_filters(request: HttpRequest) -> Filters:
    return filters_from_return_to(request.POST.get("return_to", ""))


def _page_url(filters: Filters, anchor: str = "") -> str:
    query = urlencode(filters.query())
    return reverse("image_ranking:dashboard") + (f"?{query}" if query else "") + anchor


def _return_to(filters: Filters) -> str:
    return urlencode(filters.query())


def _oob(
    request: HttpRequest, filters: Filters, message: str, level: str, *, labels_changed=False
) -> str:
    """The counts, the undo button and the status line (and the calibration panel when labels
    changed), swapped in wherever they are on the page."""
    return render_to_string(
        "image_ranking/_oob.html",
        {
            "counts": selectors.counts(filters.city_id, filters.list_id),
            "toast": message,
            "toast_level": level,
            "undo_depth": labels.undo_depth(request.session),
            "calibration": calibration.calibrate(filters.model) if labels_changed else None,
            "models": calibration.model_choices(),
            "filters": filters,
            "return_to": _return_to(filters),
        },
        request=request,
    )


def _card_html(request: HttpRequest, card: selectors.Card, filters: Filters) -> str:
    return render_to_string(
        "image_ranking/_poi_card.html",
        {"card": card, "return_to": _return_to(filters)},
        request=request,
    )


def _answer_card(
    request: HttpRequest,
    poi_id: int,
    message: str,
    *,
    level: str = "success",
    status: int = 200,
) -> HttpResponse:
    """htmx: the POI's card (+ counts, status line); otherwise a redirect back with a message."""
    filters = _post_filters(request)
    if not request.htmx:
        getattr(messages, level)(request, message)
        return HttpResponseRedirect(_page_url(filters, f"#poi-{poi_id}"))
    card = selectors.one_card(poi_id, calibration.current_threshold())
    html = _card_html(request, card, filters) if card else ""
    response = HttpResponse(html + _oob(request, filters, message, level), status=status)
    response["HX-Retarget"] = f"#poi-{poi_id}"
    response["HX-Reswap"] = "outerHTML"
    return response


def _answer_tile(
    request: HttpRequest, poi_id: int, image_url: str, message: str, level: str = "success"
) -> HttpResponse:
    """htmx: just the labelled image's tile, so other clicks in the card are never swapped
    away mid-flight; without htmx a redirect back. Falls back to the card when the image is
    no longer one of the POI's."""
    if not request.htmx:
        return _answer_card(request, poi_id, message, level=level)
    filters = _post_filters(request)
    card = selectors.one_card(poi_id, calibration.current_threshold())
    tile = card.tile_for(image_url) if card else None
    if tile is None:
        return _answer_card(request, poi_id, message, level=level)
    html = render_to_string(
        "image_ranking/_tile.html",
        {"card": card, "tile": tile, "return_to": _return_to(filters)},
        request=request,
    )
    oob = _oob(request, filters, message, level, labels_changed=True)
    response = HttpResponse(html + oob)
    response["HX-Retarget"] = f"#t-{tile.key}"
    response["HX-Reswap"] = "outerHTML"
    return response


def _answer_panel(
    request: HttpRequest, template: str, context: dict, message: str, level: str = "success"
) -> HttpResponse:
    filters = _post_filters(request)
    if not request.htmx:
        getattr(messages, level)(request, message)
        return HttpResponseRedirect(_page_url(filters))
    html = render_to_string(
        template, {**context, "filters": filters, "return_to": _return_to(filters)}, request
    )
    return HttpResponse(html + _oob(request, filters, message, level))


def _error(request: HttpRequest, message: str, status: int = 409) -> HttpResponse:
    """A refused action: a plain-text 4xx for htmx (shown as the status line), else a redirect."""
    if request.htmx:
        return HttpResponse(message, status=status, content_type="text/plain")
    messages.error(request, message)
    return HttpResponseRedirect(_page_url(_post_filters(request)))


# --- Pages ----------------------------------------------------------------------------------


@staff_member_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    form = FilterForm(request.GET)
    if not form.is_valid():
        return _bad_request(form)
    filters = form.filters()
    cities, poi_lists = selectors.filter_options()
    if filters.city_id and filters.city_id not in {c.pk for c in cities}:
        return HttpResponseBadRequest("Unknown city.", content_type="text/plain")
    if filters.list_id and filters.list_id not in {pl.pk for pl in poi_lists}:
        return HttpResponseBadRequest("Unknown list.", content_type="text/plain")
    threshold = calibration.current_threshold()
    page, cards = selectors.page_of_cards(filters, threshold)
    return_to = _return_to(filters)
    watch = live.Watch(tuple(c.poi.pk for c in cards))
    run_panel = runpanel.panel(live.latest_run(), watch, runpanel.page_states(cards), return_to)
    context = {
        "filters": filters,
        "return_to": return_to,
        "cities": cities,
        "poi_lists": poi_lists,
        "statuses": selectors.STATUSES,
        "per_page_choices": selectors.PER_PAGE_CHOICES,
        "counts": selectors.counts(filters.city_id, filters.list_id),
        "page": page,
        "cards": cards,
        "page_pois": ",".join(str(pk) for pk in watch.poi_ids),
        "prev_url": _page_url(Filters(**{**filters.__dict__, "page": page.number - 1}))
        if page.has_previous()
        else "",
        "next_url": _page_url(Filters(**{**filters.__dict__, "page": page.number + 1}))
        if page.has_next()
        else "",
        "threshold": threshold,
        "calibration_model": calibration.model_name(),
        "models": calibration.model_choices(),
        "scopes": Scope.choices,
        "calibration": calibration.calibrate(filters.model),
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
    return HttpResponse(_card_html(request, card, filters))


# --- Labels ---------------------------------------------------------------------------------


def _label_message(change: labels.LabelChange, label: str | None) -> str:
    return "Label cleared." if label is None else f"Marked {label}."


@staff_member_required
@require_POST
def label_candidate(request: HttpRequest, candidate_id: int) -> HttpResponse:
    candidate = get_object_or_404(Candidate.objects.select_related("poi"), pk=candidate_id)
    form = LabelForm(request.POST)
    if not form.is_valid():
        return _bad_request(form)
    change = labels.label_candidate(candidate, form.value(), user=request.user)
    labels.push_undo(request.session, change)
    return _answer_tile(
        request, candidate.poi_id, change.image_url, _label_message(change, form.value())
    )


@staff_member_required
@require_POST
def label_current(request: HttpRequest, poi_id: int) -> HttpResponse:
    poi = get_object_or_404(PointOfInterest, pk=poi_id)
    form = LabelForm(request.POST)
    if not form.is_valid():
        return _bad_request(form)
    if not poi.image_file:
        return _error(request, "This POI has no image to label.")
    change = labels.label_current_image(poi, form.value(), user=request.user)
    labels.push_undo(request.session, change)
    return _answer_tile(request, poi.pk, change.image_url, _label_message(change, form.value()))


@staff_member_required
@require_POST
def undo_label(request: HttpRequest) -> HttpResponse:
    change = labels.pop_undo(request.session)
    if change is None:
        return _error(request, "Nothing to undo.")
    labels.undo(change)
    message = "Undone: label restored." if change.previous else "Undone: label removed."
    return _answer_tile(request, change.poi_id, change.image_url, message)


# --- Images and ranking ---------------------------------------------------------------------


@staff_member_required
@require_POST
def use_candidate(request: HttpRequest, candidate_id: int) -> HttpResponse:
    """Store this candidate as the POI's image (the pipeline's storage path)."""
    from image_ranking.commons.downloads import DownloadError
    from image_ranking.pipeline.storage import StorageError, store_candidate_as_image

    candidate = get_object_or_404(Candidate.objects.select_related("poi"), pk=candidate_id)
    try:
        store_candidate_as_image(candidate, user=request.user)
    except (DownloadError, StorageError) as exc:
        logger.warning("Use image %s for POI %s failed: %s", candidate.pk, candidate.poi_id, exc)
        return _answer_card(
            request, candidate.poi_id, f"Could not use this image: {exc}", level="error"
        )
    # Choosing an image is an explicit "good" from the curator.
    labels.push_undo(request.session, labels.label_candidate(candidate, "good", user=request.user))
    return _answer_card(request, candidate.poi_id, f"Now using “{candidate.title}”.")


@staff_member_required
@require_POST
def rerank_poi(request: HttpRequest, poi_id: int) -> HttpResponse:
    """Re-rank one POI: a run of its own (Kind.POI), followed by the card, not the panel."""
    from image_ranking.runs.service import RunAlreadyActive, start_run

    poi = get_object_or_404(PointOfInterest, pk=poi_id)
    if not poi.lists.exists():
        return _error(request, "Only POIs in a list are ranked.")
    try:
        start_run(
            scope=Scope.ALL,
            poi_ids=[poi.pk],
            threshold=calibration.current_threshold(),
            user=request.user,
        )
    except RunAlreadyActive as exc:
        return _error(request, f"A re-rank of this POI is already going (run {exc.run.pk}).")
    return _answer_card(request, poi.pk, "Re-rank queued.")


@staff_member_required
@require_POST
def apply_fallback(request: HttpRequest, poi_id: int) -> HttpResponse:
    from image_ranking.pipeline.fallback import apply_category_fallback
    from image_ranking.pipeline.storage import StorageError

    poi = get_object_or_404(PointOfInterest, pk=poi_id)
    try:
        applied = apply_category_fallback(poi)
    except StorageError as exc:
        return _answer_card(request, poi.pk, f"Fallback failed: {exc}", level="error")
    if not applied:
        reason = (
            "it already has an image"
            if poi.image_file
            else f"no fallback image for “{poi.category}”"
        )
        return _answer_card(request, poi.pk, f"No fallback applied: {reason}.", level="warning")
    return _answer_card(
        request, poi.pk, "Category fallback image applied; the POI still needs a photo."
    )


def _watch(data, *, shown: str = "") -> live.Watch | None:
    """The page's POIs a panel answer watches (`pois`, `shown`); None when malformed."""
    try:
        return live.Watch.parse(data.get("pois", "")[:2000], shown[:2000])
    except live.BadWatch:
        return None


def _panel_answer(
    request: HttpRequest, run: RankingRun, watch: live.Watch, return_to: str
) -> HttpResponse:
    """The run panel, plus (htmx) the watched cards whose state changed, swapped in place."""
    now, cards = runpanel.changed_cards(watch)
    run_panel = runpanel.panel(run, watch, now, return_to)
    html = render_to_string("image_ranking/_progress.html", run_panel.context(), request)
    return HttpResponse(html + runpanel.oob_cards(request, cards, return_to))


@staff_member_required
@require_POST
def start_ranking_run(request: HttpRequest) -> HttpResponse:
    from image_ranking.runs.service import RunAlreadyActive, start_run

    form = RunForm(request.POST)
    watch = _watch(request.POST)
    if not form.is_valid():
        return _bad_request(form)
    if watch is None:
        return HttpResponseBadRequest("Bad POI ids.", content_type="text/plain")
    data = form.cleaned_data
    city = None
    if data["city"]:
        city = City.objects.filter(pk=data["city"]).first()
        if city is None:
            return HttpResponseBadRequest("Unknown city.", content_type="text/plain")
    threshold = data["threshold"]
    try:
        # The same request twice (a double click, a second curator) is refused atomically;
        # a different scope or city may run alongside (the rate limit is shared anyway).
        run = start_run(
            scope=data["scope"],
            city=city,
            threshold=threshold if threshold is not None else calibration.current_threshold(),
            replace_existing=data["replace_existing"],
            user=request.user,
        )
    except RunAlreadyActive as exc:
        return _error(request, str(exc))
    total = run.tally().total
    message = f"Run {run.pk}: {total} POIs queued." if total else "No POIs to rank."
    filters = _post_filters(request)
    if not request.htmx:
        messages.success(request, message)
        return HttpResponseRedirect(_page_url(filters))
    response = _panel_answer(request, run, watch, _return_to(filters))
    response.content += _oob(request, filters, message, "success").encode()
    return response


@staff_member_required
@require_GET
def run_progress(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run panel; it polls itself while the run is active and stops when it ends. Each
    poll sweeps the run (lost tasks end as failed, so a dead run ends while curators watch)
    and brings the cards of the page's POIs whose item changed."""
    from image_ranking.runs.sweep import sweep_run

    run = get_object_or_404(RankingRun.objects.select_related("city"), pk=run_id)
    watch = _watch(request.GET, shown=request.GET.get("shown", ""))
    if watch is None:
        return HttpResponseBadRequest("Bad live-card parameters.", content_type="text/plain")
    if run.is_active:
        sweep_run(run)
        run.refresh_from_db()
    return_to = _return_to(filters_from_return_to(request.GET.get("return_to", "")))
    response = _panel_answer(request, run, watch, return_to)
    if not run.is_active:
        trigger_client_event(response, RUN_FINISHED_EVENT, {"run": run.pk})
    return response


@staff_member_required
@require_POST
def cancel_ranking_run(request: HttpRequest, run_id: int) -> HttpResponse:
    """Cancel an active run: its queued POIs are not ranked; the one in hand finishes."""
    from image_ranking.runs.service import cancel_run

    run = get_object_or_404(RankingRun.objects.select_related("city"), pk=run_id)
    if not run.is_active:
        return _error(request, f"Run {run.pk} has ended already ({run.get_status_display()}).")
    cancelled = cancel_run(run, user=request.user)
    message = f"Run {run.pk} cancelled: {cancelled} queued POIs will not be ranked."
    filters = _post_filters(request)
    if not request.htmx:
        messages.success(request, message)
        return HttpResponseRedirect(_page_url(filters))
    response = _panel_answer(request, run, live.Watch(), _return_to(filters))
    response.content += _oob(request, filters, message, "success").encode()
    trigger_client_event(response, RUN_FINISHED_EVENT, {"run": run.pk})
    return response


# --- Calibration, bootstrap, export ---------------------------------------------------------


def _calibration_answer(request: HttpRequest, model: str, message: str) -> HttpResponse:
    return _answer_panel(
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
        return _bad_request(form)
    model = form.cleaned_data["model"] or calibration.model_name()
    try:
        adopted = calibration.adopt_threshold(
            form.cleaned_data["threshold"], model=model, user=request.user
        )
    except calibration.NotEnoughLabels as exc:
        return _error(request, f"No threshold adopted: {exc}.")
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
        return _bad_request(form)
    city_id = form.cleaned_data["city"]
    if city_id and not City.objects.filter(pk=city_id).exists():
        return HttpResponseBadRequest("Unknown city.", content_type="text/plain")
    result = bootstrap.bootstrap(city_id)
    message = (
        f"Bootstrap: {result.good} good and {result.bad} bad labels added "
        f"from {result.pois} curated POIs; existing labels kept."
    )
    if result.removed:
        message += f" {result.removed} bootstrap bad labels of curated images removed."
    response = _calibration_answer(request, _post_filters(request).model, message)
    if request.htmx:  # the list reloads itself, so the new labels show on the cards
        trigger_client_event(response, LABELS_BOOTSTRAPPED_EVENT, {"good": result.good})
    return response


@staff_member_required
@require_GET
def export_labels(request: HttpRequest, fmt: str) -> StreamingHttpResponse:
    rows = labels.export_rows()
    if fmt == "csv":
        body, content_type = labels.csv_lines(rows), "text/csv; charset=utf-8"
    else:
        body, content_type = labels.jsonl_lines(rows), "application/x-ndjson; charset=utf-8"
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="image-training-labels.{fmt}"'
    return response
