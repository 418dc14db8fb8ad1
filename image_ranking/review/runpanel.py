"""The run panel: what it shows for a batch run, and the cards its poll brings along.

Kept out of the views so the start, progress and cancel answers render the same panel, and
so the live-card rule (which cards changed since the page last showed them) lives in one
place.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest
from django.template.loader import render_to_string

from image_ranking.models import RankingRun, RunTally
from image_ranking.review import calibration, live, selectors
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

    def context(self) -> dict:
        return {
            "run": self.run,
            "tally": self.tally,
            "progress": self.progress,
            "poll_url": self.poll_url,
            "cancel_url": self.cancel_url,
            "return_to": self.return_to,
            "rate_per_hour": settings.WIKIMEDIA_RATE_PER_HOUR,
        }


def panel(run: RankingRun | None, watch: live.Watch, now: dict[int, str], return_to: str) -> Panel:
    """The panel of `run`, polling with the page's POIs and the states shown to them."""
    if run is None:
        return Panel(None, None, None, return_to=return_to)
    tally = run.tally()
    query = watch.query(now)
    if return_to:
        query = f"{query}&" if query else ""
        query += urlencode({"return_to": return_to})
    poll_url = url_for("run_progress", run.pk) + (f"?{query}" if query else "")
    return Panel(
        run,
        tally,
        live.progress_of(run, tally),
        poll_url=poll_url,
        cancel_url=url_for("cancel_run", run.pk) if run.is_active else "",
        return_to=return_to,
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
    return "".join(
        render_to_string(
            "image_ranking/_poi_card.html",
            {"card": card, "return_to": return_to, "oob": True},
            request=request,
        )
        for card in cards
    )
