"""Dashboard queries: counts, filters, one page of POI cards.

A page costs a fixed number of queries whatever its size: the POIs with their city, ranking
and Validation in one query, then candidates, labels and lists prefetched in one query each.
Cards are plain objects built from that data, so templates never touch the database.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from django.core.paginator import Page, Paginator
from django.db.models import Case, Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Value, When
from django.urls import reverse

from cities.models import City, PoiList, PointOfInterest
from image_ranking.models import Candidate, ImageTrainingData, PoiRanking, RankingRun

STATUSES = {
    "missing": "Missing image",
    "flagged": "Flagged",
    "ranked": "Ranked",
    "has_image": "Has image",
}
PER_PAGE_CHOICES = (10, 20, 50)
DEFAULT_PER_PAGE = 20

HAS_IMAGE = ~Q(image_file="") & Q(image_file__isnull=False)


@dataclass(frozen=True)
class Filters:
    city_id: int | None = None
    list_id: int | None = None
    status: str = ""
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    def query(self, *, page: int | None = None) -> dict[str, str]:
        """The filter state as URL parameters (defaults left out)."""
        params: dict[str, str] = {}
        if self.city_id:
            params["city"] = str(self.city_id)
        if self.list_id:
            params["list"] = str(self.list_id)
        if self.status:
            params["status"] = self.status
        if self.per_page != DEFAULT_PER_PAGE:
            params["per_page"] = str(self.per_page)
        page = self.page if page is None else page
        if page != 1:
            params["page"] = str(page)
        return params


def pois_in_lists(city_id: int | None = None, list_id: int | None = None):
    """POIs in at least one list (Exists, so a POI in several lists appears once)."""
    through = PoiList.pois.through.objects.filter(pointofinterest_id=OuterRef("pk"))
    if list_id:
        through = through.filter(poilist_id=list_id)
    pois = PointOfInterest.objects.filter(Exists(through))
    if city_id:
        pois = pois.filter(city_id=city_id)
    return pois


def status_filter(pois: QuerySet[PointOfInterest], status: str) -> QuerySet[PointOfInterest]:
    if status == "missing":
        return pois.exclude(HAS_IMAGE)
    if status == "has_image":
        return pois.filter(HAS_IMAGE)
    if status == "flagged":
        return pois.filter(ranking__status=PoiRanking.Status.FLAGGED)
    if status == "ranked":
        return pois.filter(
            ranking__status__in=[PoiRanking.Status.RANKED, PoiRanking.Status.UPDATED]
        )
    return pois


def counts(city_id: int | None = None, list_id: int | None = None) -> dict[str, int]:
    """The numbers at the top of the page, within the city/list filter (two queries)."""
    pois = pois_in_lists(city_id, list_id)
    totals = pois.aggregate(
        in_lists=Count("pk"),
        missing=Count("pk", filter=~HAS_IMAGE),
        flagged=Count("pk", filter=Q(ranking__status=PoiRanking.Status.FLAGGED)),
        ranked=Count(
            "pk",
            filter=Q(ranking__status__in=[PoiRanking.Status.RANKED, PoiRanking.Status.UPDATED]),
        ),
    )
    labels = ImageTrainingData.objects.all()
    if city_id or list_id:
        labels = labels.filter(poi__in=pois.values("pk"))
    totals["labelled"] = labels.count()
    return totals


def filter_options() -> tuple[list[City], list[PoiList]]:
    cities = list(City.objects.only("pk", "name").order_by("name"))
    lists = list(
        PoiList.objects.select_related("city")
        .only("pk", "title", "city__name")
        .order_by("city__name", "title")
    )
    return cities, lists


# --- Cards ----------------------------------------------------------------------------------


@functools.cache
def _url_pattern(name: str) -> str:
    """The URL of route `name` with a `{}` for the id: one reverse() per process, not one per
    button (reverse() was a quarter of a 50-POI page's render time)."""
    return reverse(f"image_ranking:{name}", args=[987654321]).replace("987654321", "{}")


def url_for(name: str, pk: int) -> str:
    return _url_pattern(name).format(pk)


@dataclass
class Tile:
    """One image of a POI (the current one or a candidate) with its label state; everything
    the template needs is computed here, so rendering a tile is only substitutions."""

    key: str  # DOM id suffix
    image_url: str
    thumb_url: str
    label_url: str
    label: str = ""
    label_source: str = ""
    candidate: Candidate | None = None
    below_threshold: bool = False
    use_url: str = ""
    fallback: bool = False  # the current image is the category fallback

    @property
    def link_url(self) -> str:
        """Where the thumbnail links to (the Commons file page); only http(s) URLs."""
        c = self.candidate
        url = (c.description_url or c.image_url) if c else self.image_url
        return url if url.startswith(("https://", "http://", "/")) else ""

    @property
    def good_value(self) -> str:
        """What the Good button posts: pressing it again clears the label."""
        return "clear" if self.label == "good" else "good"

    @property
    def bad_value(self) -> str:
        return "clear" if self.label == "bad" else "bad"

    @property
    def css(self) -> str:
        classes = ["tile"]
        if self.label:
            classes.append(f"tile--{self.label}")
        c = self.candidate
        if c is None:
            classes.append("tile--current")
            if self.fallback:
                classes.append("tile--fallback")
        else:
            if c.is_winner:
                classes.append("tile--winner")
            if not c.eligible:
                classes.append("tile--ineligible")
        if self.below_threshold:
            classes.append("tile--below")
        return " ".join(classes)


@dataclass
class Card:
    poi: PointOfInterest
    ranking: PoiRanking | None
    threshold: float
    current: Tile | None
    candidates: list[Tile] = field(default_factory=list)
    list_titles: list[str] = field(default_factory=list)

    @property
    def rerank_url(self) -> str:
        return url_for("rerank", self.poi.pk)

    @property
    def fallback_url(self) -> str:
        return url_for("fallback", self.poi.pk)

    @property
    def status(self) -> str:
        if self.ranking is None:
            return "unranked"
        return self.ranking.status

    @property
    def is_fallback(self) -> bool:
        return bool(self.ranking and self.ranking.uses_fallback and self.current)

    @property
    def flag_reason(self) -> str:
        if not self.ranking:
            return ""
        if self.ranking.validation_id and self.ranking.validation:
            return self.ranking.validation.description or self.ranking.validation.aggregate
        if self.ranking.status in (PoiRanking.Status.FLAGGED, PoiRanking.Status.FAILED):
            return self.ranking.reason
        return ""

    def tile_for(self, image_url: str) -> Tile | None:
        tiles = [self.current, *self.candidates] if self.current else self.candidates
        return next((t for t in tiles if t.image_url == image_url), None)

    @property
    def is_pending(self) -> bool:
        """A job is queued or running for this POI: the card refreshes itself."""
        r = self.ranking
        return bool(r and (r.status == PoiRanking.Status.PENDING or r.claimed_by))


def card_queryset() -> QuerySet[PointOfInterest]:
    return PointOfInterest.objects.select_related(
        "city", "ranking", "ranking__validation"
    ).prefetch_related(
        Prefetch(
            "candidates",
            # Best first: eligible ones by score (unscored last), then the ineligible ones.
            queryset=Candidate.objects.order_by(
                "-eligible", F("score").desc(nulls_last=True), "search_rank"
            ),
        ),
        Prefetch("training_labels", queryset=ImageTrainingData.objects.order_by()),
        Prefetch("lists", queryset=PoiList.objects.only("pk", "title").order_by("title")),
    )


def build_card(poi: PointOfInterest, default_threshold: float) -> Card:
    """A card from a POI fetched through `card_queryset` (no further queries)."""
    try:
        ranking = poi.ranking
    except PoiRanking.DoesNotExist:
        ranking = None
    threshold = (
        ranking.threshold if ranking and ranking.threshold is not None else default_threshold
    )
    labels = {row.image_url: row for row in poi.training_labels.all()}

    def labelled(tile: Tile) -> Tile:
        row = labels.get(tile.image_url)
        if row:
            tile.label, tile.label_source = row.label, row.source
        return tile

    current = None
    if poi.image_file:
        url = poi.image_file.url
        current = labelled(
            Tile(
                key=f"p{poi.pk}",
                image_url=url,
                # A replaced image often keeps its URL: the version defeats the browser cache.
                thumb_url=f"{url}?v={int(poi.updated_at.timestamp())}",
                label_url=url_for("label_current", poi.pk),
            )
        )
        current.fallback = bool(ranking and ranking.uses_fallback)
    has_image = current is not None
    tiles = [
        labelled(
            Tile(
                key=f"c{c.pk}",
                image_url=c.image_url,
                thumb_url=c.thumb_url or c.image_url,
                candidate=c,
                below_threshold=c.score is not None and c.score < threshold,
                label_url=url_for("label_candidate", c.pk),
                # "Use this image" for any candidate but the one already in use.
                use_url="" if c.is_winner and has_image else url_for("use_candidate", c.pk),
            )
        )
        for c in poi.candidates.all()
    ]
    return Card(
        poi=poi,
        ranking=ranking,
        threshold=threshold,
        current=current,
        candidates=tiles,
        list_titles=[pl.title for pl in poi.lists.all()],
    )


def page_of_cards(filters: Filters, default_threshold: float) -> tuple[Page, list[Card]]:
    pois = status_filter(pois_in_lists(filters.city_id, filters.list_id), filters.status)
    pois = card_queryset().filter(pk__in=pois.values("pk")).order_by("city__name", "name", "pk")
    page = Paginator(pois, filters.per_page).get_page(filters.page)
    cards = [build_card(poi, default_threshold) for poi in page.object_list]
    return page, cards


def one_card(poi_id: int, default_threshold: float) -> Card | None:
    poi = card_queryset().filter(pk=poi_id).first()
    return build_card(poi, default_threshold) if poi else None


def latest_run() -> RankingRun | None:
    """The run shown in the progress panel: the active one, else the most recent."""
    active = [RankingRun.Status.QUEUED, RankingRun.Status.RUNNING]
    return (
        RankingRun.objects.select_related("city")
        .annotate(active=Case(When(status__in=active, then=Value(1)), default=Value(0)))
        .order_by("-active", "-created_at", "-pk")
        .first()
    )


@dataclass
class Progress:
    total: int
    processed: int
    percent: int
    eta_seconds: int | None

    @property
    def eta_text(self) -> str:
        if self.eta_seconds is None:
            return ""
        minutes = max(1, round(self.eta_seconds / 60))
        if minutes < 90:
            return f"about {minutes} min left"
        return f"about {minutes / 60:.1f} h left"


def progress_of(run: RankingRun, now=None) -> Progress:
    """Percent done and an ETA: one Commons request per POI, so the rate limit bounds the pace;
    once the run has a measured pace and it is slower, that one counts."""
    from django.conf import settings
    from django.utils import timezone

    total, done = run.total, min(run.processed, run.total)
    percent = 100 if total == 0 else int(100 * done / total)
    if not run.is_active or total == 0:
        return Progress(total, done, percent, None)
    rate = int(settings.WIKIMEDIA_RATE_PER_HOUR)  # 0 = no limit
    per_poi = 3600 / rate if rate > 0 else None
    if run.started_at and done:
        elapsed = ((now or timezone.now()) - run.started_at).total_seconds()
        per_poi = max(per_poi or 0.0, elapsed / done)
    eta = None if per_poi is None else int((total - done) * per_poi)
    return Progress(total, done, percent, eta)
