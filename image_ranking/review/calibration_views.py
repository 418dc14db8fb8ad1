"""Calibration views: the panel (fetched when the drawer opens), adopting a threshold, and
bootstrap labels from the curated images."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.template.defaultfilters import pluralize
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from cities.models import City
from image_ranking.review import bootstrap, calibration
from image_ranking.review.access import staff_only
from image_ranking.review.answers import (
    answer_panel,
    bad_request,
    error,
    post_filters,
    return_to_query,
)
from image_ranking.review.forms import BootstrapForm, FilterForm, ThresholdForm

LABELS_BOOTSTRAPPED_EVENT = "labelsBootstrapped"


@staff_only
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


@staff_only
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


@staff_only
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
