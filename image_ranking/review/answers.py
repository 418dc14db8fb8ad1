"""How dashboard actions answer: with htmx, only the affected fragment (plus the counts, the
undo button and a status line swapped out of band); without JavaScript, a redirect back to
the page the form came from, filters kept, with a message. Shared by the views modules.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import reverse

from image_ranking.review import calibration, labels, rendering, selectors
from image_ranking.review.forms import filters_from_return_to
from image_ranking.review.selectors import Filters


def bad_request(form) -> HttpResponseBadRequest:
    errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
    return HttpResponseBadRequest(f"Bad parameters: {errors}", content_type="text/plain")


def post_filters(request: HttpRequest) -> Filters:
    return filters_from_return_to(request.POST.get("return_to", ""))


def page_url(filters: Filters, anchor: str = "") -> str:
    query = urlencode(filters.query())
    return reverse("image_ranking:dashboard") + (f"?{query}" if query else "") + anchor


def return_to_query(filters: Filters) -> str:
    return urlencode(filters.query())


def oob(
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
            "return_to": return_to_query(filters),
        },
        request=request,
    )


def card_html(request: HttpRequest, card: selectors.Card, filters: Filters) -> str:
    return rendering.render_card(request, card, return_to_query(filters))


FOCUS_HEADER = "X-Undo-Focus"  # the element dashboard.js focuses after an undo


def answer_card(
    request: HttpRequest,
    poi_id: int,
    message: str,
    *,
    level: str = "success",
    status: int = 200,
    labels_changed: bool = False,
    focus_url: str = "",
) -> HttpResponse:
    """htmx: the POI's card (+ counts, status line, and the calibration panel when labels
    changed); otherwise a redirect back with a message. `focus_url` names the image whose
    tile takes the focus after an undo (`FOCUS_HEADER`)."""
    filters = post_filters(request)
    if not request.htmx:
        getattr(messages, level)(request, message)
        return HttpResponseRedirect(page_url(filters, f"#poi-{poi_id}"))
    card = selectors.one_card(poi_id, calibration.current_threshold())
    html = card_html(request, card, filters) if card else ""
    extra = oob(request, filters, message, level, labels_changed=labels_changed)
    response = HttpResponse(html + extra, status=status)
    response["HX-Retarget"] = f"#poi-{poi_id}"
    response["HX-Reswap"] = "outerHTML"
    tile = card.tile_for(focus_url) if card and focus_url else None
    if tile is not None:
        response[FOCUS_HEADER] = f"#t-{tile.key}"
    return response


def answer_tile(
    request: HttpRequest, poi_id: int, image_url: str, message: str, level: str = "success"
) -> HttpResponse:
    """htmx: just the labelled image's tile, so other clicks in the card are never swapped
    away mid-flight; without htmx a redirect back. Falls back to the card when the image is
    no longer one of the POI's."""
    if not request.htmx:
        return answer_card(request, poi_id, message, level=level)
    filters = post_filters(request)
    card = selectors.one_card(poi_id, calibration.current_threshold())
    tile = card.tile_for(image_url) if card else None
    if tile is None:
        return answer_card(request, poi_id, message, level=level)
    html = rendering.render_tile(request, card, tile, return_to_query(filters))
    extra = oob(request, filters, message, level, labels_changed=True)
    response = HttpResponse(html + extra)
    response["HX-Retarget"] = f"#t-{tile.key}"
    response["HX-Reswap"] = "outerHTML"
    return response


def answer_panel(
    request: HttpRequest, template: str, context: dict, message: str, level: str = "success"
) -> HttpResponse:
    filters = post_filters(request)
    if not request.htmx:
        getattr(messages, level)(request, message)
        return HttpResponseRedirect(page_url(filters))
    html = render_to_string(
        template, {**context, "filters": filters, "return_to": return_to_query(filters)}, request
    )
    return HttpResponse(html + oob(request, filters, message, level))


def error(request: HttpRequest, message: str, status: int = 409) -> HttpResponse:
    """A refused action: a plain-text 4xx for htmx (shown as the status line), else a redirect."""
    if request.htmx:
        return HttpResponse(message, status=status, content_type="text/plain")
    messages.error(request, message)
    return HttpResponseRedirect(page_url(post_filters(request)))
