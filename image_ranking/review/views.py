"""The dashboard page and one card: thin function views over the selectors. The actions are
in `label_views`, `image_views`, `calibration_views`, `run_views`, `bulk` and `selection`.

Every action is a POST form that works twice: with htmx it answers with only the affected
fragment (plus the counts and a status line swapped out of band); without JavaScript it
redirects back to the page the form came from, filters kept, with a message. GET never
changes anything; bad ids are 404, bad parameters 400, refused actions 409, and nothing is
changed then.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from cities.models import PointOfInterest
from image_ranking.models import RankingRun, Scope
from image_ranking.review import (
    calibration,
    counts,
    facets,
    live,
    ordering,
    rendering,
    runpanel,
    selectors,
    undo,
)
from image_ranking.review.access import staff_only
from image_ranking.review.answers import bad_request, card_html, page_url, return_to_query
from image_ranking.review.forms import SEARCH_MAX, FilterForm, filters_from_return_to
from image_ranking.review.selectors import Filters
from image_ranking.runs.sweep import sweep_run

TILE_SIZES = {"s": "Small", "m": "Medium", "l": "Large"}
TILE_SIZE_COOKIE = "ir_tiles"  # set by dashboard.js when the curator picks a size


def tile_size(request: HttpRequest) -> str:
    """The tile size the curator chose last (remembered in a cookie), rendered by the server so
    the page never jumps from one size to another."""
    size = request.COOKIES.get(TILE_SIZE_COOKIE, "")
    return size if size in TILE_SIZES else "m"


@dataclass(frozen=True)
class FilterChoice:
    """One filter of the page as its select shows it: each option with its count."""

    param: str
    name: str
    help: str
    value: str
    options: list[tuple[str, str, int | None]]  # value, label, POIs in the scope


def filter_choices(filters: Filters, found: dict) -> list[FilterChoice]:
    """The page's filters with their options and counts; a reason only older data has, and
    a score range a link names, are offered too (the latter without a count)."""
    choices = []
    for group in facets.GROUPS:
        numbers = found.get(group.param, {})
        labels = dict(group.options)
        for value, n in numbers.items():
            if value and value not in labels and n:
                labels[value] = facets.flag_label(value)
        value = getattr(filters, group.param)
        if value and value not in labels:
            labels[value] = facets.score_label(value) if group.param == "score" else value
        options = [(v, label, numbers.get(v)) for v, label in labels.items()]
        choices.append(FilterChoice(group.param, group.name, group.help, value, options))
    return choices


@staff_only
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
    both = counts.stamps()
    header = counts.counts(filters.city_id, filters.list_id, both[0])
    found = counts.facet_counts(filters.city_id, filters.list_id, both, compute=False)
    counted = all(param in found for param in selectors.FACETS)
    page, cards = selectors.page_of_cards(filters, threshold, found)
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
        "filter_groups": filter_choices(filters, found),
        # The counts not kept yet come right after the page (`filter_counts`).
        "counts_url": "" if counted else reverse("image_ranking:filter_counts") + f"?{return_to}",
        "sorts": {value: label for value, (label, _) in ordering.SORTS.items()},
        "per_page_choices": selectors.PER_PAGE_CHOICES,
        "counts": header,
        "page": page,
        "cards": cards,
        "cards_html": rendering.render_cards(request, cards, return_to),
        "page_pois": ",".join(str(pk) for pk in watch.poi_ids),
        "prev_url": page_url(filters.replace(page=page.number - 1)) if page.has_previous else "",
        "next_url": page_url(filters.replace(page=page.number + 1)) if page.has_next else "",
        "threshold": threshold,
        "calibration_model": calibration.model_name(),
        "models": calibration.model_choices(),
        "scopes": Scope.choices,
        # The panel sits in the closed drawer: fetched when it opens, unless the URL picks a model.
        "calibration": calibration.calibrate(filters.model) if filters.model else None,
        "undo_depth": undo.undo_depth(request.session),
        **run_panel.context(),
    }
    return render(request, "image_ranking/image_ranking.html", context)


@staff_only
@require_GET
def poi_card(request: HttpRequest, poi_id: int) -> HttpResponse:
    """One card, for a card that follows its own re-rank (`?run=`, swept on each poll so a
    lost task still ends it)."""
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


@staff_only
@require_GET
def filter_counts(request: HttpRequest) -> HttpResponse:
    """The page's filters with every count, each swapped in place of its copy: fetched right
    after a page whose counts were not all kept (counting takes longer than the page)."""
    form = FilterForm(request.GET)
    if not form.is_valid():
        return bad_request(form)
    filters = form.filters()
    found = counts.facet_counts(filters.city_id, filters.list_id)
    context = {"filter_groups": filter_choices(filters, found)}
    return render(request, "image_ranking/_filter_counts.html", context)
