"""How dashboard actions answer: with htmx, only the affected fragment (plus the counts, the
undo button and a status line swapped out of band); without JavaScript, a redirect back to
the page the form came from, filters kept, with a message. Shared by the views modules.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
from django.template.loader import render_to_string
from django.urls import reverse
from django_htmx.http import push_url, reswap, retarget, trigger_client_event

from cities.models import PointOfInterest
from image_ranking.models import Candidate
from image_ranking.review import calibration, focusing, labels, rendering, selectors
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
    focused = focus_answer(request, poi_id, message, level, status, focus_url)
    if focused is not None:
        return focused
    filters = post_filters(request)
    if not request.htmx:
        getattr(messages, level)(request, message)
        return HttpResponseRedirect(page_url(filters, f"#poi-{poi_id}"))
    card = selectors.one_card(poi_id, calibration.current_threshold())
    html = card_html(request, card, filters) if card else ""
    extra = oob(request, filters, message, level, labels_changed=labels_changed)
    if card is None:  # the POI is gone: nothing to swap, the message says why
        return error(request, message, status=status if status >= 400 else 404)
    response = reswap(
        retarget(HttpResponse(html + extra, status=status), f"#poi-{poi_id}"), "outerHTML"
    )
    tile = card.tile_for(focus_url) if card and focus_url else None
    if tile is not None:
        response[FOCUS_HEADER] = f"#t-{tile.key}"
    return response


def answer_cards(
    request: HttpRequest,
    poi_ids: list[int],
    message: str,
    *,
    level: str = "success",
    labels_changed: bool = False,
    focus_url: str = "",
) -> HttpResponse:
    """An action on several POIs (a selection): htmx swaps nothing where the request came from
    (`HX-Reswap: none`) and every changed card out of band, with the counts and status line;
    without htmx a redirect back with the message. One POI: `answer_card`."""
    if len(poi_ids) == 1 or request.POST.get("view") == FOCUS_VIEW:
        return answer_card(
            request, poi_ids[0], message, level=level, labels_changed=labels_changed,
            focus_url=focus_url,
        )  # fmt: skip
    filters = post_filters(request)
    if not request.htmx:
        getattr(messages, level)(request, message)
        return HttpResponseRedirect(page_url(filters))
    cards = selectors.cards_for(poi_ids, calibration.current_threshold())
    html = rendering.render_cards(request, cards, return_to_query(filters), oob=True)
    extra = oob(request, filters, message, level, labels_changed=labels_changed)
    response = reswap(HttpResponse(html + extra), "none")
    tile = next((c.tile_for(focus_url) for c in cards if focus_url and c.tile_for(focus_url)), None)
    if tile is not None:
        response[FOCUS_HEADER] = f"#t-{tile.key}"
    return trigger_client_event(response, SELECTION_DONE_EVENT, {})


SELECTION_DONE_EVENT = "selectionDone"  # dashboard.js clears the selection


def answer_tile(
    request: HttpRequest, poi_id: int, image_url: str, message: str, level: str = "success"
) -> HttpResponse:
    """htmx: just the labelled image's tile, so other clicks in the card are never swapped
    away mid-flight; without htmx a redirect back. Falls back to the card when the image is
    no longer one of the POI's."""
    if not request.htmx or request.POST.get("view") == FOCUS_VIEW:
        return answer_card(request, poi_id, message, level=level, focus_url=image_url)
    filters = post_filters(request)
    card = selectors.one_card(poi_id, calibration.current_threshold())
    tile = card.tile_for(image_url) if card else None
    if tile is None:
        return answer_card(request, poi_id, message, level=level)
    html = rendering.render_tile(request, card, tile, return_to_query(filters))
    extra = oob(request, filters, message, level, labels_changed=True)
    return reswap(retarget(HttpResponse(html + extra), f"#t-{tile.key}"), "outerHTML")


FOCUS_VIEW = "focus"  # the `view` a focused review's forms post


def focus_answer(
    request: HttpRequest, poi_id: int, message: str, level: str, status: int, image_url: str
) -> HttpResponse | None:
    """An action posted from the focused review: its panel again (on the image a key's label
    moved on to, with `advance`, or the image an undo changed), URL and all; None for the
    grid's actions."""
    if request.POST.get("view") != FOCUS_VIEW:
        return None
    filters = post_filters(request)
    image = request.POST.get("img", "")
    focus = focusing.Focus(filters, poi_id, image if FOCUS_IMAGE.match(image) else "")
    if request.POST.get("advance") and status < 400:
        focus = focusing.advanced(focus)
    elif image_url:  # the image the action changed (an undo: maybe another POI's)
        card = selectors.one_card(poi_id, calibration.current_threshold())
        tile = card.tile_for(image_url) if card else None
        focus = focusing.Focus(filters, poi_id, tile.key if tile else focus.image)
    url = focus.url(image=focus.image)
    if not request.htmx:
        getattr(messages, level)(request, message)
        return HttpResponseRedirect(url)
    context = focusing.panel_context(focus)
    if context is None:
        return error(request, message, status=status if status >= 400 else 404)
    html = focusing.panel_html(request, context) + oob(request, filters, message, level)
    response = HttpResponse(html, status=status)
    return push_url(reswap(retarget(response, "#focus"), "outerHTML"), url)


FOCUS_IMAGE = re.compile(r"^[cp]\d{1,12}$")


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


TOAST_EVENT = "showToast"  # dashboard.js shows its {"message", "level"} as the status line


def error(request: HttpRequest, message: str, status: int = 409) -> HttpResponse:
    """A refused action: for htmx a plain-text 4xx that swaps nothing (`HX-Reswap: none`)
    and shows its message as the status line (`TOAST_EVENT`); else a redirect with it."""
    if request.htmx:
        response = reswap(HttpResponse(message, status=status, content_type="text/plain"), "none")
        return trigger_client_event(response, TOAST_EVENT, {"message": message, "level": "error"})
    messages.error(request, message)
    return HttpResponseRedirect(page_url(post_filters(request)))


def refused_card(request: HttpRequest, poi_id: int, message: str) -> HttpResponse:
    """A stale or refused action on a POI's card: 409 with the card as it is now (swapped in
    place, see the page's htmx-config) and the message; without htmx a redirect with it.
    Never a 404 to htmx: django-htmx's DEBUG handler would swap the whole page for it."""
    return answer_card(request, poi_id, message, level="warning", status=409)


def posted_poi(request: HttpRequest) -> int | None:
    """The POI a card's form says it belongs to (`poi`), to refresh that card when the image
    a click was about is gone."""
    value = request.POST.get("poi", "")
    return int(value) if value.isdecimal() and len(value) < 12 else None


STALE = "That image is no longer one of this POI's (a re-rank replaced them): here is the card now."


def candidate_or_answer(
    request: HttpRequest, candidate_id: int
) -> tuple[Candidate | None, HttpResponse | None]:
    """The candidate a click was about, or the answer when it is gone: its POI's card as it
    is now with a message (a tile a re-rank replaced; `poi` comes with every card's form),
    else a 404 that swaps nothing."""
    candidate = Candidate.objects.select_related("poi").filter(pk=candidate_id).first()
    if candidate is not None:
        return candidate, None
    poi_id = posted_poi(request)
    if poi_id and PointOfInterest.objects.filter(pk=poi_id).exists():
        return None, refused_card(request, poi_id, STALE)
    if request.htmx:
        return None, error(request, "No such image.", status=404)
    raise Http404("No such image.")
