"""The run panel: what it shows for a batch run, and the cards its poll brings along.

Kept out of the views so the start, progress and cancel answers render the same panel, and
so the live-card rule (which cards changed since the page last showed them) lives in one
place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Max, Min, Subquery
from django.http import HttpRequest
from django.template.loader import render_to_string

from image_ranking import dbclock
from image_ranking.models import RankingRun, RankingRunItem, RunTally
from image_ranking.review import calibration, live, rendering, selectors
from image_ranking.review.cards import Card, url_for


@dataclass
class Panel:
    """Everything `_progress.html` needs."""

    run: RankingRun | None
    tally: RunTally | None
    progress: live.Progress | None
    poll_url: str = ""
    cancel_url: str = ""
    return_to: str = ""
    held: Held | None = None
    polling: bool = False  # the run is active, or cancelled with POIs still being ranked
    summary: str = ""  # a cancelled run's outcome in words

    def context(self) -> dict:
        return {
            "run": self.run,
            "tally": self.tally,
            "progress": self.progress,
            "held": self.held,
            "polling": self.polling,
            "summary": self.summary,
            "poll_url": self.poll_url,
            "cancel_url": self.cancel_url,
            "return_to": self.return_to,
            "rate_per_hour": settings.WIKIMEDIA_RATE_PER_HOUR,
        }


# A POI's fetch and scoring take some seconds whatever the rate allows: a cluster that has
# finished nothing for less than this is not taken for dead.
MIN_STALL = timedelta(seconds=60)


@dataclass(frozen=True)
class Held:
    """POIs of the run being ranked right now (its running items) while nothing of the run
    has finished for longer than a POI takes (`stalled_seconds`): only then is it worth
    saying. A worker that died is noticed by the sweep once its item outlives the task
    timeout. All from the run's own rows: nothing is read of Django-Q's broker."""

    count: int  # running items
    wait_seconds: int  # until the sweep may call the oldest of them lost
    stalled_seconds: int | None = None  # set when the run looks stalled

    @property
    def text(self) -> str:
        if not self.count or self.stalled_seconds is None:
            return ""
        stalled = max(1, round(self.stalled_seconds / 60))
        return (
            f"No POI of this run finished for {stalled} min; {self.count} "
            f"{'are' if self.count != 1 else 'is'} being ranked. If a worker died, "
            f"{'they end' if self.count != 1 else 'it ends'} as failed within "
            f"{max(1, round(self.wait_seconds / 60))} min."
        )


def held_tasks(
    run: RankingRun, tally: RunTally, progress: live.Progress, now: datetime | None = None
) -> Held:
    """The run's running items, and whether the run looks stalled: no item of it finished
    (or, before the first, the run started) for longer than the expected time per POI. One
    query (none when nothing runs)."""
    if tally.running <= 0:
        return Held(0, 0)
    items = RankingRunItem.objects.filter(run_id=run.pk)
    # Index walks, never a scan of a 100,000-item run: the last finish, the oldest start.
    last_finished = (
        items.exclude(finished_at=None).order_by("-finished_at").values("finished_at")[:1]
    )
    row = items.filter(outcome=RankingRunItem.Outcome.RUNNING).aggregate(
        oldest=Min("started_at"), finished=Max(Subquery(last_finished))
    )
    from image_ranking.runs.sweep import GRACE, task_timeout

    # item and run times are the database's clock: so is the estimate (no query)
    now = now or dbclock.estimate()
    lost_at = (row["oldest"] or now) + task_timeout() + GRACE
    since = row["finished"] or run.started_at or run.created_at
    age = (now - since).total_seconds() if since else 0.0
    expected = max(progress.per_poi_seconds or 0.0, MIN_STALL.total_seconds())
    wait = max(0, int((lost_at - now).total_seconds()))
    return Held(tally.running, wait, int(age) if age > expected else None)


def finishing(run: RankingRun, tally: RunTally) -> bool:
    """A cancelled run whose POIs being ranked at the cancel have not all been recorded yet:
    the panel keeps polling for them. Bounded by the task timeout (plus the sweep's grace)
    after the cancel, by when each has finished or is lost."""
    if run.status != RankingRun.Status.CANCELLED or not tally.running or not run.finished_at:
        return False
    from image_ranking.runs.sweep import GRACE, task_timeout

    return dbclock.estimate() < run.finished_at + task_timeout() + GRACE


def cancel_summary(run: RankingRun, tally: RunTally, still_finishing: bool) -> str:
    """ "Cancelled: 9 of 39 ranked before the cancel (7 ranked, 2 flagged), 30 not started"."""
    if run.status != RankingRun.Status.CANCELLED:
        return ""
    done = tally.processed - tally.cancelled
    parts = [
        f"{n} {label}"
        for n, label in (
            (tally.updated, "updated"),
            (tally.ranked, "ranked"),
            (tally.flagged, "flagged"),
            (tally.failed, "failed"),
            (tally.skipped, "skipped"),
        )
        if n
    ]
    detail = f" ({', '.join(parts)})" if parts else ""
    if still_finishing:
        being = "POI being ranked finishes" if tally.running == 1 else "POIs being ranked finish"
        return (
            f"Cancelling: {tally.running} {being} first; {done} of "
            f"{tally.total} ranked so far{detail}, {tally.cancelled} not started."
        )
    text = (
        f"Cancelled: {done} of {tally.total} ranked before the cancel{detail}, "
        f"{tally.cancelled} not started."
    )
    if tally.running:
        text += f" {tally.running} never recorded (its worker was lost)."
    return text


def panel(
    run: RankingRun | None,
    watch: live.Watch,
    now: dict[int, str],
    return_to: str,
    *,
    broker: bool = False,
) -> Panel:
    """The panel of `run`, polling with the page's POIs and the states shown to them. With
    `broker` (the panel's own answers: start and poll, not the page) it also says whether the
    run looks stalled (`held_tasks`), so the page costs no query more. The poll URL carries the
    processed count it shows (`done`), so the next poll knows when the header counts changed."""
    if run is None:
        return Panel(None, None, None, return_to=return_to)
    tally = run.tally()
    still_finishing = finishing(run, tally)
    query = watch.query(now)
    query = f"{query}&" if query else ""
    query += urlencode({"done": tally.processed})
    if return_to:
        query += "&" + urlencode({"return_to": return_to})
    poll_url = url_for("run_progress", run.pk) + f"?{query}"
    progress = live.progress_of(run, tally)
    return Panel(
        run,
        tally,
        progress,
        poll_url=poll_url,
        cancel_url=url_for("cancel_run", run.pk) if run.is_active else "",
        return_to=return_to,
        held=held_tasks(run, tally, progress) if broker and run.is_active else None,
        polling=run.is_active or still_finishing,
        summary=cancel_summary(run, tally, still_finishing),
    )


def page_states(cards: list[Card]) -> dict[int, str]:
    """The batch states the page's cards show (as rendered)."""
    return {
        c.poi.pk: live.CODES[c.live_outcome]
        for c in cards
        if c.live_run_kind == RankingRun.Kind.BATCH and c.live_outcome in live.CODES
    }


def changed_cards(watch: live.Watch) -> tuple[dict[int, str], list[Card]]:
    """The watched POIs' batch states now, and the cards of those whose state changed since
    the page showed them."""
    items = live.live_items(list(watch.poi_ids))
    now = live.batch_states(items)
    changed = watch.changed(now)
    cards = selectors.cards_for(changed, calibration.current_threshold()) if changed else []
    return now, cards


def oob_counts(request: HttpRequest, filters: selectors.Filters) -> str:
    """The header counts within the page's city/list filter, swapped in place (two queries)."""
    context = {"counts": selectors.counts(filters.city_id, filters.list_id), "oob": True}
    return render_to_string("image_ranking/_counts.html", context, request)


def oob_cards(request: HttpRequest, cards: list[Card], return_to: str) -> str:
    """The cards, each swapped in place of its copy on the page."""
    return rendering.render_cards(request, cards, return_to, oob=True)
