"""Run views: start a batch run, its panel's poll (live cards), cancel.

Thin: the panel and the live-card rule live in `review.runpanel` and `review.live`, the runs
themselves in `image_ranking.runs.service`.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from cities.models import City
from image_ranking.models import RankingRun
from image_ranking.review import calibration, live, runpanel
from image_ranking.review.access import staff_only
from image_ranking.review.answers import (
    bad_request,
    error,
    oob,
    page_url,
    post_filters,
    return_to_query,
)
from image_ranking.review.forms import RunForm, filters_from_return_to
from image_ranking.runs.service import RunAlreadyActive, cancel_run, start_run
from image_ranking.runs.sweep import sweep_run

RUN_FINISHED_EVENT = "rankingRunFinished"


def _watch(data, *, shown: str = "") -> live.Watch | None:
    """The page's POIs a panel answer watches (`pois`, `shown`); None when malformed."""
    try:
        return live.Watch.parse(data.get("pois", "")[:2000], shown[:2000])
    except live.BadWatch:
        return None


def _panel_answer(
    request: HttpRequest,
    run: RankingRun,
    watch: live.Watch,
    return_to: str,
    *,
    shown_done: int | None = None,
) -> tuple[HttpResponse, runpanel.Panel]:
    """The run panel, plus (htmx) the watched cards whose state changed, swapped in place.
    With `shown_done` (a poll: the processed count the page shows) the header counts come
    along too whenever something changed: a card, the processed count, or the run ended.
    A poll that changed nothing costs no query more."""
    now, cards = runpanel.changed_cards(watch)
    run_panel = runpanel.panel(run, watch, now, return_to, broker=True)
    html = render_to_string("image_ranking/_progress.html", run_panel.context(), request)
    html += runpanel.oob_cards(request, cards, return_to)
    if shown_done is not None and (
        cards or not run_panel.polling or run_panel.tally.processed != shown_done
    ):
        html += runpanel.oob_counts(request, filters_from_return_to(return_to))
    return HttpResponse(html), run_panel


@staff_only
@require_POST
def start_ranking_run(request: HttpRequest) -> HttpResponse:
    form = RunForm(request.POST)
    watch = _watch(request.POST)
    if not form.is_valid():
        return bad_request(form)
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
        return error(request, str(exc))
    total = run.tally().total
    message = f"Run {run.pk}: {total} POIs queued." if total else "No POIs to rank."
    filters = post_filters(request)
    if not request.htmx:
        messages.success(request, message)
        return HttpResponseRedirect(page_url(filters))
    response, _ = _panel_answer(request, run, watch, return_to_query(filters))
    response.content += oob(request, filters, message, "success").encode()
    return response


@staff_only
@require_GET
def run_progress(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run panel; it polls itself while the run is active (or cancelled with POIs still
    being ranked) and stops when it ends. Each poll sweeps the run (lost tasks end as failed,
    so a dead run ends while curators watch) and brings the cards of the page's POIs whose
    item changed, and the header counts when anything changed (`done`: the processed count
    the page shows)."""
    run = get_object_or_404(RankingRun.objects.select_related("city"), pk=run_id)
    watch = _watch(request.GET, shown=request.GET.get("shown", ""))
    if watch is None:
        return HttpResponseBadRequest("Bad live-card parameters.", content_type="text/plain")
    if run.is_active:
        sweep_run(run)
        run.refresh_from_db()
    done = request.GET.get("done", "")[:12]
    shown_done = int(done) if done.isdecimal() else -1  # none given: the counts come along
    return_to = return_to_query(filters_from_return_to(request.GET.get("return_to", "")))
    response, run_panel = _panel_answer(request, run, watch, return_to, shown_done=shown_done)
    if not run_panel.polling:
        trigger_client_event(response, RUN_FINISHED_EVENT, {"run": run.pk})
    return response


@staff_only
@require_POST
def cancel_ranking_run(request: HttpRequest, run_id: int) -> HttpResponse:
    """Cancel an active run: its queued POIs are not ranked; those in hand finish, and the
    panel keeps polling until they are recorded."""
    run = get_object_or_404(RankingRun.objects.select_related("city"), pk=run_id)
    if not run.is_active:
        return error(request, f"Run {run.pk} has ended already ({run.get_status_display()}).")
    cancelled = cancel_run(run, user=request.user)
    message = f"Run {run.pk} cancelled: {cancelled} queued POIs will not be ranked."
    filters = post_filters(request)
    if not request.htmx:
        messages.success(request, message)
        return HttpResponseRedirect(page_url(filters))
    response, _ = _panel_answer(request, run, live.Watch(), return_to_query(filters))
    response.content += oob(request, filters, message, "success").encode()
    trigger_client_event(response, RUN_FINISHED_EVENT, {"run": run.pk})
    return response
