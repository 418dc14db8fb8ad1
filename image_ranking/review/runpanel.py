"""The run panel: what it shows for a batch run, and the cards its poll brings along.

Kept out of the views so the start, progress and cancel answers render the same panel, and
so the live-card rule (which cards changed since the page last showed them) lives in one
place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, Max
from django.http import HttpRequest
from django.utils import timezone

from image_ranking.models import RankingRun, RunTally
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

    def context(self) -> dict:
        return {
            "run": self.run,
            "tally": self.tally,
            "progress": self.progress,
            "held": self.held,
            "poll_url": self.poll_url,
            "cancel_url": self.cancel_url,
            "return_to": self.return_to,
            "rate_per_hour": settings.WIKIMEDIA_RATE_PER_HOUR,
        }


@dataclass(frozen=True)
class Held:
    """Tasks a cluster took from the ORM broker and has not finished: each is locked until
    its hand-out plus `Q_CLUSTER["retry"]` seconds. A busy cluster finishes them; a dead one
    never does, and they are handed out again only once that lock passes."""

    count: int
    wait_seconds: int  # until the last lock passes
    worst_eta_seconds: int | None  # the ETA if every held task must wait for it

    @property
    def text(self) -> str:
        if not self.count:
            return ""
        minutes = max(1, round(self.worst_eta_seconds / 60))
        eta = f"{minutes} min" if minutes < 90 else f"{minutes / 60:.1f} h"
        return (
            f"{self.count} task{'s' if self.count != 1 else ''} held by a worker; if it died, "
            f"they are handed out again in {max(1, round(self.wait_seconds / 60))} min "
            f"(then up to {eta} left)"
        )


def rate_per_poi() -> float:
    """Seconds per POI the rate limit allows (0 = limiter off)."""
    rate = int(settings.WIKIMEDIA_RATE_PER_HOUR)
    return 3600 / rate if rate > 0 else 0.0


def held_tasks(progress: live.Progress, now: datetime | None = None) -> Held:
    """The tasks of this cluster's queue that a cluster holds (lock in the future), and the
    ETA if they must wait for their lock to pass (one query)."""
    from django_q.models import OrmQ

    now = now or timezone.now()
    row = OrmQ.objects.filter(key=settings.Q_CLUSTER["name"], lock__gt=now).aggregate(
        count=Count("pk"), last=Max("lock")
    )
    if not row["count"]:
        return Held(0, 0, progress.eta_seconds)
    wait = int((row["last"] - now).total_seconds())
    count = min(row["count"], progress.total - progress.processed) or row["count"]
    worst = max(progress.eta_seconds or 0, int(wait + count * rate_per_poi()))
    return Held(row["count"], wait, worst)


def panel(
    run: RankingRun | None,
    watch: live.Watch,
    now: dict[int, str],
    return_to: str,
    *,
    broker: bool = False,
) -> Panel:
    """The panel of `run`, polling with the page's POIs and the states shown to them. With
    `broker` (the panel's own answers: start and poll, not the page) it also reads the tasks
    a cluster holds (`held_tasks`), so the page costs no query more."""
    if run is None:
        return Panel(None, None, None, return_to=return_to)
    tally = run.tally()
    query = watch.query(now)
    if return_to:
        query = f"{query}&" if query else ""
        query += urlencode({"return_to": return_to})
    poll_url = url_for("run_progress", run.pk) + (f"?{query}" if query else "")
    progress = live.progress_of(run, tally)
    return Panel(
        run,
        tally,
        progress,
        poll_url=poll_url,
        cancel_url=url_for("cancel_run", run.pk) if run.is_active else "",
        return_to=return_to,
        held=held_tasks(progress) if broker and run.is_active else None,
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


def oob_cards(request: HttpRequest, cards: list[Card], return_to: str) -> str:
    """The cards, each swapped in place of its copy on the page."""
    return rendering.render_cards(request, cards, return_to, oob=True)
