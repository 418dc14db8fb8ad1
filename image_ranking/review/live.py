"""What runs are doing right now, as the dashboard shows it: the run panel's run, its
progress and ETA, and the live state of the POIs on the page.

Live cards: the run panel polls its run every 2 s and tells the server which POIs the page
shows and which of them it last showed as queued or ranking (`Watch`). The answer carries
the cards whose state changed since, swapped out of band. Comparing states rather than
timestamps means a card whose item was committed a moment late is still swapped, and each
card at most once per change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count

from image_ranking import dbclock
from image_ranking.models import OPEN_OUTCOMES, RankingRun, RankingRunItem

MAX_WATCHED = 100  # more than the largest page
Outcome = RankingRunItem.Outcome
# One letter per open state in the poll URL.
CODES = {Outcome.PENDING: "q", Outcome.RUNNING: "r"}
OUTCOME_OF = {code: outcome for outcome, code in CODES.items()}


def latest_run() -> RankingRun | None:
    """The run shown in the run panel: the active batch run, else the latest batch run. A
    one-POI re-rank shows on its own card only."""
    runs = RankingRun.objects.select_related("city").filter(kind=RankingRun.Kind.BATCH)
    return (
        runs.filter(status__in=RankingRun.ACTIVE).order_by("-created_at", "-pk").first()
        or runs.order_by("-created_at", "-pk").first()
    )


@dataclass(frozen=True)
class LiveItem:
    outcome: str
    run_id: int
    run_kind: str


def live_items(poi_ids: list[int]) -> dict[int, LiveItem]:
    """The POIs' open items in active runs (one query); a running item beats a queued one,
    and a one-POI re-rank beats a batch (its card follows it by itself)."""
    if not poi_ids:
        return {}
    rows = RankingRunItem.objects.filter(
        poi_id__in=poi_ids, outcome__in=OPEN_OUTCOMES, run__status__in=RankingRun.ACTIVE
    ).values_list("poi_id", "outcome", "run_id", "run__kind")
    found: dict[int, LiveItem] = {}
    for poi_id, outcome, run_id, kind in rows:
        item = LiveItem(outcome, run_id, kind)
        old = found.get(poi_id)
        if old is None or _rank(item) > _rank(old):
            found[poi_id] = item
    return found


def _rank(item: LiveItem) -> tuple[bool, bool]:
    return item.run_kind != RankingRun.Kind.BATCH, item.outcome == Outcome.RUNNING


def attach(cards: list, items: dict[int, LiveItem]) -> None:
    """Give each card its POI's live item, and a queued one-POI re-rank what it waits behind
    (`queued_behind`, "" when nothing is ahead)."""
    behind = queued_behind(items)
    for card in cards:
        item = items.get(card.poi.pk)
        card.queued_behind = ""
        if item:
            card.live_outcome, card.live_run_id = item.outcome, item.run_id
            card.live_run_kind = item.run_kind
            if item.run_kind == RankingRun.Kind.POI and item.outcome == Outcome.PENDING:
                card.queued_behind = behind.get(item.run_id, "")


def queued_behind(items: dict[int, LiveItem]) -> dict[int, str]:
    """{one-POI run id: "run 5 (31 POIs ahead)"} for the queued one-POI re-ranks among
    `items`. Django-Q's ORM broker hands tasks out in the order they were queued, so a
    re-rank queued during a batch run waits until the open items of the active runs started
    before it are done. One query, and only when such a re-rank is there."""
    waiting = {
        item.run_id
        for item in items.values()
        if item.run_kind == RankingRun.Kind.POI and item.outcome == Outcome.PENDING
    }
    if not waiting:
        return {}
    rows = (
        RankingRunItem.objects.filter(
            run_id__lt=max(waiting), run__status__in=RankingRun.ACTIVE, outcome__in=OPEN_OUTCOMES
        )
        .values("run_id")
        .annotate(open=Count("pk"))
        .order_by("run_id")
    )
    open_items = [(row["run_id"], row["open"]) for row in rows]
    found = {}
    for run_id in waiting:
        ahead = [(pk, n) for pk, n in open_items if pk < run_id]
        if ahead:
            found[run_id] = behind_text(ahead)
    return found


def behind_text(ahead: list[tuple[int, int]]) -> str:
    """ "run 5 (31 POIs ahead)", "runs 5 and 7 (40 POIs ahead)"."""
    ids = [str(pk) for pk, _ in ahead]
    runs = f"run {ids[0]}" if len(ids) == 1 else f"runs {', '.join(ids[:-1])} and {ids[-1]}"
    count = sum(n for _, n in ahead)
    return f"{runs} ({count} POI{'s' if count != 1 else ''} ahead)"


def batch_states(items: dict[int, LiveItem]) -> dict[int, str]:
    """{poi id: state code} of the POIs a batch run has open (what the panel watches)."""
    return {
        poi_id: CODES[item.outcome]
        for poi_id, item in items.items()
        if item.run_kind == RankingRun.Kind.BATCH and item.outcome in CODES
    }


class BadWatch(ValueError):
    pass


@dataclass(frozen=True)
class Watch:
    """The page's POIs and the state the page last showed for those a batch run had open."""

    poi_ids: tuple[int, ...] = ()
    shown: dict[int, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, pois: str, shown: str) -> Watch:
        """From the poll URL: `pois=3,4,5&shown=3q,4r`. Anything malformed is BadWatch."""
        try:
            ids = tuple(int(part) for part in pois.split(",") if part) if pois else ()
            states = {}
            for part in filter(None, shown.split(",")):
                code, poi_id = part[-1], int(part[:-1])
                if code not in OUTCOME_OF or poi_id not in ids:
                    raise ValueError(part)
                states[poi_id] = code
        except ValueError as exc:
            raise BadWatch(f"bad live-card parameters: {exc}") from None
        if len(ids) > MAX_WATCHED or any(i <= 0 for i in ids):
            raise BadWatch("bad live-card parameters: POI ids")
        return cls(ids, states)

    def changed(self, now: dict[int, str]) -> list[int]:
        """POIs whose card no longer shows their state, in page order."""
        return [pk for pk in self.poi_ids if self.shown.get(pk) != now.get(pk)]

    def query(self, now: dict[int, str]) -> str:
        """The next poll's parameters, with the states this answer shows."""
        if not self.poi_ids:
            return ""
        shown = ",".join(f"{pk}{now[pk]}" for pk in self.poi_ids if pk in now)
        params = {"pois": ",".join(map(str, self.poi_ids))}
        if shown:
            params["shown"] = shown
        return urlencode(params)


@dataclass
class Progress:
    """`percent` is the share of POIs ranked (cancelled ones are not: a cancelled run's bar
    shows them apart, `cancelled_percent`)."""

    total: int
    processed: int
    percent: int
    eta_seconds: int | None
    cancelled: int = 0
    per_poi_seconds: float | None = None  # the expected time per POI (None: no limit, no pace)

    @property
    def ranked(self) -> int:
        """Processed and not cancelled: what the bar fills."""
        return self.processed - self.cancelled

    @property
    def cancelled_percent(self) -> int:
        return 0 if not self.total else int(100 * self.cancelled / self.total)

    @property
    def eta_text(self) -> str:
        if self.eta_seconds is None:
            return ""
        minutes = max(1, round(self.eta_seconds / 60))
        if minutes < 90:
            return f"about {minutes} min left"
        return f"about {minutes / 60:.1f} h left"


def progress_of(run: RankingRun, tally, now=None) -> Progress:
    """Percent done and an ETA: one Commons request per POI, so the rate limit bounds the pace;
    once the run has a measured pace and it is slower, that one counts."""
    total, done = tally.total, min(tally.processed, tally.total)
    cancelled = min(tally.cancelled, done)
    percent = 100 if total == 0 else int(100 * (done - cancelled) / total)
    if not run.is_active or total == 0:
        return Progress(total, done, percent, None, cancelled)
    rate = int(settings.WIKIMEDIA_RATE_PER_HOUR)  # 0 = no limit
    per_poi = 3600 / rate if rate > 0 else None
    if run.started_at and done:
        # started_at is the database's clock: so is the estimate (no query; see dbclock)
        elapsed = ((now or dbclock.estimate()) - run.started_at).total_seconds()
        per_poi = max(per_poi or 0.0, elapsed / done)
    eta = None if per_poi is None else int((total - done) * per_poi)
    return Progress(total, done, percent, eta, cancelled, per_poi)
