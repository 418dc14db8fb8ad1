"""POI cards: plain objects built from prefetched data, so templates never touch the database.

A card's queries are fixed whatever the page size: the POIs with their city, ranking and flag
in one query, then candidates, labels and lists in one query each, and the POIs' open run
items (their live state) in one more (`review.live`). Its images are `review.tiles`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import F, Prefetch

from cities.models import PoiList, PointOfInterest
from image_ranking.models import Candidate, ImageTrainingData, PoiRanking, RankingRunItem
from image_ranking.review.labels import rank_score
from image_ranking.review.tiles import Tile, focus_href, url_for


@dataclass
class Card:
    poi: PointOfInterest
    ranking: PoiRanking | None
    threshold: float
    current: Tile | None
    candidates: list[Tile] = field(default_factory=list)
    list_titles: list[str] = field(default_factory=list)
    # The POI's open item in an active run, if any (set by `review.live.attach`).
    live_outcome: str = ""
    live_run_id: int | None = None
    live_run_kind: str = ""

    @property
    def focus_href(self) -> str:
        return focus_href(self.poi.pk)

    @property
    def rerank_url(self) -> str:
        return url_for("rerank", self.poi.pk)

    @property
    def fallback_url(self) -> str:
        return url_for("fallback", self.poi.pk)

    @property
    def card_url(self) -> str:
        return url_for("poi_card", self.poi.pk)

    @property
    def search_query_url(self) -> str:
        return url_for("search_query", self.poi.pk)

    @property
    def has_curator_query(self) -> bool:
        """A curator saved a query or File: titles for this POI (kept for later runs)."""
        return bool(self.ranking and (self.ranking.search_query or self.ranking.file_titles))

    @property
    def status(self) -> str:
        if self.ranking is None:
            return "unranked"
        return self.ranking.status

    @property
    def is_fallback(self) -> bool:
        """Showing its category's fallback image: it still needs a photo."""
        return bool(self.ranking and self.ranking.uses_fallback and self.current)

    @property
    def has_real_image(self) -> bool:
        return self.current is not None and not self.is_fallback

    @property
    def threshold_is_the_rankings(self) -> bool:
        """The card's threshold is the one its ranking used (else the next runs')."""
        return bool(self.ranking and self.ranking.threshold is not None)

    @property
    def flag_reason(self) -> str:
        if not self.ranking:
            return ""
        if self.ranking.validation_id and self.ranking.validation:
            return self.ranking.validation.description or self.ranking.validation.aggregate
        if self.ranking.status in (PoiRanking.Status.FLAGGED, PoiRanking.Status.FAILED):
            return self.ranking.reason
        return ""

    @property
    def live_chip(self) -> str:
        """ "Queued" or "Ranking…" while an active batch run has it; "" otherwise."""
        if not self.live_outcome or self.live_run_kind != "batch":
            return ""
        return "Ranking…" if self.live_outcome == RankingRunItem.Outcome.RUNNING else "Queued"

    @property
    def watched_rerank(self) -> int | None:
        """The one-POI run re-ranking this POI (or storing a curator's choice that had to wait
        for Commons): the card follows it by itself."""
        return self.live_run_id if self.live_outcome and self.live_run_kind != "batch" else None

    def tile_for(self, image_url: str) -> Tile | None:
        tiles = [self.current, *self.candidates] if self.current else self.candidates
        return next((t for t in tiles if t.image_url == image_url), None)


_CURATOR = PoiRanking.Origin.CURATOR


# Best first: eligible ones by the score the winner choice uses (unscored last), then the
# ineligible ones.
CANDIDATE_ORDER = (
    "-eligible",
    F("rank_score").desc(nulls_last=True),
    F("score").desc(nulls_last=True),
    "search_rank",
)


def cards_of(poi_ids: list[int], default_threshold: float) -> dict[int, Card]:
    """The cards of these POIs (4 queries: POIs with city, ranking and flag; candidates;
    labels; lists). Candidates and labels are read as plain rows and grouped here: Django's
    prefetch would also set each row's link back to its POI, a third of a page's time."""
    pois = PointOfInterest.objects.select_related("city", "ranking", "ranking__validation")
    pois = pois.prefetch_related(
        Prefetch("lists", queryset=PoiList.objects.only("pk", "title").order_by("title"))
    ).filter(pk__in=poi_ids)
    candidates: dict[int, list[Candidate]] = {}
    for c in Candidate.objects.filter(poi_id__in=poi_ids).order_by(*CANDIDATE_ORDER):
        candidates.setdefault(c.poi_id, []).append(c)
    labels: dict[int, list[ImageTrainingData]] = {}
    for row in ImageTrainingData.objects.filter(poi_id__in=poi_ids).order_by():
        labels.setdefault(row.poi_id, []).append(row)
    return {
        poi.pk: build_card(
            poi, default_threshold, candidates.get(poi.pk, []), labels.get(poi.pk, [])
        )
        for poi in pois
    }


def build_card(
    poi: PointOfInterest,
    default_threshold: float,
    candidates: list[Candidate],
    label_rows: list[ImageTrainingData],
) -> Card:
    """A card from a POI, its candidates (best first) and its labels (no further queries)."""
    try:
        ranking = poi.ranking
    except PoiRanking.DoesNotExist:
        ranking = None
    threshold = (
        ranking.threshold if ranking and ranking.threshold is not None else default_threshold
    )
    labels = {row.image_url: row for row in label_rows}

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
                image_file=poi.image_file,
            )
        )
        current.fallback = bool(ranking and ranking.uses_fallback)
    has_real_image = current is not None and not current.fallback
    if has_real_image and ranking and ranking.image_origin in PoiRanking.STORED_FROM_CANDIDATE:
        current.source = next((c for c in candidates if c.is_winner), None)

    def below(c: Candidate) -> bool:
        score = rank_score(c)
        return score is not None and score < threshold

    curator_chose = bool(has_real_image and ranking and ranking.image_origin == _CURATOR)
    tiles = [
        labelled(
            Tile(
                key=f"c{c.pk}",
                image_url=c.image_url,
                thumb_url=c.thumb_url or c.image_url,
                candidate=c,
                below_threshold=below(c),
                threshold=threshold,
                # "Use this image" for any candidate but the one already in use.
                in_use=c.is_winner and has_real_image,
                siblings=len(candidates) > 1,
                chosen_by_curator=c.is_winner and curator_chose,
            )
        )
        for c in candidates
    ]
    return Card(
        poi=poi,
        ranking=ranking,
        threshold=threshold,
        current=current,
        candidates=tiles,
        list_titles=[pl.title for pl in poi.lists.all()],
    )
