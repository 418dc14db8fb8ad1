"""POI cards: plain objects built from prefetched data, so templates never touch the database.

A card's queries are fixed whatever the page size: the POIs with their city, ranking and flag
in one query, then candidates, labels and lists prefetched in one query each, and the POIs'
open run items (their live state) in one more (`review.live`).
"""

from __future__ import annotations

import functools
import json
import mimetypes
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import SuspiciousFileOperation
from django.db.models import F, Prefetch, QuerySet
from django.db.models.fields.files import FieldFile
from django.template.defaultfilters import filesizeformat
from django.urls import reverse

from cities.models import PoiList, PointOfInterest
from image_ranking.models import Candidate, ImageTrainingData, PoiRanking, RankingRunItem

Source = ImageTrainingData.Source


@functools.cache
def _url_pattern(name: str) -> str:
    """The URL of route `name` with a `{}` for the id: one reverse() per process, not one per
    button (reverse() was a quarter of a 50-POI page's render time)."""
    return reverse(f"image_ranking:{name}", args=[987654321]).replace("987654321", "{}")


def url_for(name: str, pk: int) -> str:
    return _url_pattern(name).format(pk)


def safe_link(url: str) -> str:
    """`url` when it is an absolute http(s) URL or a path on this site, else "".

    A protocol-relative `//host/...` (or `/\\host`, which browsers read the same way) would
    leave the site, and `javascript:` would run: both are refused."""
    if url.startswith(("https://", "http://")):
        return url
    if url.startswith("/") and url[1:2] not in ("/", "\\"):
        return url
    return ""


def commons_link(url: str) -> str:
    """`url` only when it is an absolute http(s) URL: the lightbox's "on Commons" link must
    leave for Commons itself, never for a local path, `//host` or `javascript:`."""
    return url if url.startswith(("https://", "http://")) else ""


LIGHTBOX_WIDTH = 1280  # the lightbox's rendition: large, yet a standard Commons step


def rank_score(candidate: Candidate) -> float | None:
    """The score the winner choice compares with the threshold: after the blur penalty when
    the pipeline recorded one, else the model's score."""
    return candidate.rank_score if candidate.rank_score is not None else candidate.score


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
    threshold: float | None = None  # the card's threshold, for the lightbox's reasons
    # The current image's candidate (the pipeline's or a curator's choice), for its details.
    source: Candidate | None = None
    bulk_url: str = ""  # "this one good, the POI's other candidates bad" (review.bulk)
    stored_size: int | None = None  # the current image's file, in bytes (None: unreadable)
    chosen_by_curator: bool = False  # the winner is a curator's "Use this image", not a run's

    @property
    def winner_badge(self) -> str:
        """A winner tile's badge: the pipeline's winner, or the image a curator chose."""
        return "Curator's pick" if self.chosen_by_curator else "Winner"

    @property
    def short_title(self) -> str:
        """The candidate's title as tiles show it, without its "File:" namespace."""
        return self.candidate.title.replace("File:", "") if self.candidate else ""

    @property
    def link_url(self) -> str:
        """Where the thumbnail links to (the Commons file page); only http(s) or local."""
        c = self.candidate
        return safe_link((c.description_url or c.image_url) if c else self.image_url)

    @property
    def is_auto_label(self) -> bool:
        """A bootstrap label: shown apart from a curator's own, and confirmed by pressing."""
        return bool(self.label) and self.label_source == Source.BOOTSTRAP

    @property
    def curator_label(self) -> str:
        return "" if self.is_auto_label else self.label

    @property
    def good_value(self) -> str:
        """What the Good button posts: pressing a curator's own label again clears it;
        pressing it on a bootstrap label makes it the curator's."""
        return "clear" if self.curator_label == "good" else "good"

    @property
    def bad_value(self) -> str:
        return "clear" if self.curator_label == "bad" else "bad"

    @property
    def rank_score(self) -> float | None:
        return rank_score(self.candidate) if self.candidate else None

    @property
    def can_label(self) -> bool:
        """Good/Bad/Clear are offered: never on the category fallback, no photo of the POI."""
        return not self.fallback

    @property
    def photo_of_another(self) -> bool:
        """The ranking found this file is another POI's photo (`shared_photos`); "Use this
        image" would be refused, so the tile offers none (its note says whose it is)."""
        from image_ranking.pipeline.shared_photos import is_taken_reason

        c = self.candidate
        return bool(c and not c.eligible and is_taken_reason(c.ineligible_reason))

    @property
    def can_use(self) -> bool:
        return bool(self.use_url) and not self.photo_of_another

    @property
    def penalised(self) -> bool:
        """The winner choice ranked it below its model score (a blurred copy)."""
        c = self.candidate
        return bool(c and c.score is not None and c.rank_score is not None
                    and c.rank_score < c.score)  # fmt: skip

    @property
    def large_url(self) -> str:
        """The lightbox's image: the candidate's 1280 px rendition (the original when it is
        smaller or Commons cannot render one), or the stored file for the current image."""
        c = self.candidate
        if c is None:
            return safe_link(self.thumb_url)
        from image_ranking.commons.renditions import rendition_or_original

        try:
            url = rendition_or_original(c, LIGHTBOX_WIDTH, original_if_unrenderable=True)
        except ValueError:
            url = c.image_url
        return safe_link(url)

    def lightbox(self) -> dict[str, Any]:
        """What the lightbox shows of this image, read by dashboard.js from the tile's
        `data-lightbox`: the page already has it, so opening costs no request."""
        c = self.candidate or self.source
        # The current image's facts are the stored file's (resized to fit 800x600), not those
        # of the Commons original it came from; its resolution is read from it in the browser.
        original = self.candidate
        size = original.size if original else self.stored_size
        resolution = ""
        if original and original.width and original.height:
            resolution = f"{original.width}\u00d7{original.height}"
        mime = original.mime if original else ""
        info: dict[str, Any] = {
            "src": self.large_url,
            "title": c.title if c else "",
            "kind": "candidate" if self.candidate else ("fallback" if self.fallback else "current"),
            "commons": (commons_link(c.description_url) or commons_link(c.image_url)) if c else "",
            "resolution": resolution,
            "size": filesizeformat(size) if size else "",
            "mime": mime or (mimetypes.guess_type(self.image_url)[0] or ""),
            "rank": c.search_rank if c else None,
            "distance": f"{c.distance_km:.1f} km" if c and c.distance_km is not None else "",
            "score": self._score_text(c),
            "reasons": self._reasons(c),
        }
        if not self.candidate:
            info["title"] = info["title"] or (
                "Category fallback image" if self.fallback else "Stored image"
            )
        return info

    @property
    def lightbox_json(self) -> str:
        return json.dumps(self.lightbox(), ensure_ascii=False)

    @staticmethod
    def _score_text(c: Candidate | None) -> str:
        if c is None or c.score is None:
            return ""
        text = f"{c.score:.2f}"
        if c.score_std is not None:
            text += f" ± {c.score_std:.2f}"
        if c.model_name:
            text += f" ({c.model_name})"
        ranked = rank_score(c)
        if ranked is not None and ranked < c.score:
            text += f", ranked {ranked:.2f}"
        return text

    def _reasons(self, c: Candidate | None) -> list[dict[str, str]]:
        """Why it won or lost, in the words of the tile's notes (kind: CSS modifier)."""
        reasons: list[dict[str, str]] = []
        if self.fallback:
            reasons.append({"kind": "below", "text": "Category fallback: still needs a photo"})
        if c is None:
            return reasons
        if self.candidate is None:
            reasons.append({"kind": "", "text": "Stored from this Commons candidate"})
        if c.is_winner and self.candidate:
            text = "Chosen by a curator" if self.chosen_by_curator else "Winner of the last ranking"
            reasons.append({"kind": "winner", "text": text})
        if c.error:
            reasons.append({"kind": "error", "text": c.error})
        if not c.eligible:
            text = f"Not eligible: {c.ineligible_reason or 'excluded'}"
            reasons.append({"kind": "ineligible", "text": text})
        score = rank_score(c)
        if self.threshold is not None and score is not None and score < self.threshold:
            text = f"Below threshold: {score:.2f} < {self.threshold:.2f}"
            reasons.append({"kind": "below", "text": text})
        if c.damage:
            reasons.append({"kind": "damage", "text": c.damage[:1].upper() + c.damage[1:]})
        if c.relevance:
            text = c.relevance[:1].upper() + c.relevance[1:]
            reasons.append({"kind": "relevance", "text": text})
        return reasons

    @property
    def css(self) -> str:
        classes = ["tile"]
        if self.label:
            classes.append(f"tile--{self.label}")
            if self.is_auto_label:
                classes.append("tile--auto")
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
    # The POI's open item in an active run, if any (set by `review.live.attach`).
    live_outcome: str = ""
    live_run_id: int | None = None
    live_run_kind: str = ""

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


def stored_size(image_file: FieldFile) -> int | None:
    """The stored file's size in bytes (one stat), or None when it cannot be read: a card
    still shows when a file went missing."""
    try:
        return image_file.size
    except (OSError, SuspiciousFileOperation):
        return None


_CURATOR = PoiRanking.Origin.CURATOR


def card_queryset() -> QuerySet[PointOfInterest]:
    return PointOfInterest.objects.select_related(
        "city", "ranking", "ranking__validation"
    ).prefetch_related(
        Prefetch(
            "candidates",
            # Best first: eligible ones by the score the winner choice uses (unscored last),
            # then the ineligible ones.
            queryset=Candidate.objects.order_by(
                "-eligible",
                F("rank_score").desc(nulls_last=True),
                F("score").desc(nulls_last=True),
                "search_rank",
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
        current.stored_size = stored_size(poi.image_file)
    has_real_image = current is not None and not current.fallback
    if has_real_image and ranking and ranking.image_origin in PoiRanking.STORED_FROM_CANDIDATE:
        current.source = next((c for c in poi.candidates.all() if c.is_winner), None)

    def below(c: Candidate) -> bool:
        score = rank_score(c)
        return score is not None and score < threshold

    candidates = list(poi.candidates.all())
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
                label_url=url_for("label_candidate", c.pk),
                # "Use this image" for any candidate but the one already in use.
                use_url="" if c.is_winner and has_real_image else url_for("use_candidate", c.pk),
                bulk_url=url_for("good_others_bad", c.pk) if len(candidates) > 1 else "",
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
