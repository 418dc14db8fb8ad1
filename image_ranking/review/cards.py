"""POI cards: plain objects built from prefetched data, so templates never touch the database.

A card's queries are fixed whatever the page size: the POIs with their city, ranking and flag
in one query, then candidates, labels and lists prefetched in one query each, and the POIs'
open run items (their live state) in one more (`review.live`).
"""

from __future__ import annotations

import math
import mimetypes
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import SuspiciousFileOperation
from django.db.models import F, Prefetch
from django.db.models.fields.files import FieldFile
from django.template.defaultfilters import filesizeformat
from django.urls import reverse

from cities.models import PoiList, PointOfInterest
from image_ranking.models import Candidate, ImageTrainingData, PoiRanking, RankingRunItem

Source = ImageTrainingData.Source


def url_for(name: str, pk: int) -> str:
    return reverse(f"image_ranking:{name}", args=[pk])


def focus_href(poi_id: int, key: str = "") -> str:
    """The focused review of a POI (and one of its images), relative to the dashboard: short,
    since every tile links to it; dashboard.js adds the page's filters."""
    if not poi_id:  # a candidate's key names its POI too
        return f"review/?img={key}"
    return f"review/?poi={poi_id}" + (f"&img={key}" if key else "")


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
    """`url` only when it is an absolute http(s) URL: the focused review's "on Commons" link must
    leave for Commons itself, never for a local path, `//host` or `javascript:`."""
    return url if url.startswith(("https://", "http://")) else ""


LARGE_WIDTH = 1280  # the focused review's rendition: large, yet a standard Commons step


def rank_score(candidate: Candidate) -> float | None:
    """The score the winner choice compares with the threshold: after the blur penalty when
    the pipeline recorded one, else the model's score."""
    return candidate.rank_score if candidate.rank_score is not None else candidate.score


@dataclass
class Tile:
    """One image of a POI (the current one or a candidate) with its label state; everything
    the template needs is computed here, so rendering a tile is only substitutions."""

    key: str  # DOM id suffix: "p<poi id>" for the current image, "c<candidate id>"
    image_url: str
    thumb_url: str
    label: str = ""
    label_source: str = ""
    candidate: Candidate | None = None
    below_threshold: bool = False
    in_use: bool = False  # the candidate is the POI's image now: no "Use this image"
    siblings: bool = False  # the POI has other candidates: "Only this" makes sense
    fallback: bool = False  # the current image is the category fallback
    threshold: float | None = None  # the card's threshold, for the focused review's reasons
    # The current image's candidate (the pipeline's or a curator's choice), for its details.
    source: Candidate | None = None
    image_file: FieldFile | None = None  # the current image's stored file
    chosen_by_curator: bool = False  # the winner is a curator's "Use this image", not a run's

    # The action URLs: read by the focused review only (the grid's action bar builds them from
    # the tile's id), so a page of 220 tiles reverses none of them.
    @property
    def label_url(self) -> str:
        if self.candidate is None:
            return url_for("label_current", int(self.key[1:]))
        return url_for("label_candidate", self.candidate.pk)

    @property
    def use_url(self) -> str:
        return (
            ""
            if self.candidate is None or self.in_use
            else url_for("use_candidate", self.candidate.pk)
        )

    @property
    def bulk_url(self) -> str:
        """ "This one good, the POI's other candidates bad" (review.bulk)."""
        return (
            url_for("good_others_bad", self.candidate.pk)
            if self.candidate and self.siblings
            else ""
        )

    @property
    def stored_size(self) -> int | None:
        """The current image's file, in bytes (None: unreadable or no file)."""
        return stored_size(self.image_file) if self.image_file else None

    @property
    def focus_href(self) -> str:
        """The current image: its POI's review; a candidate: its own (its key names the POI)."""
        return (
            focus_href(int(self.key[1:])) if self.key.startswith("p") else focus_href(0, self.key)
        )

    @property
    def aspect(self) -> tuple[int, int] | None:
        """The photo's width and height, reduced (4000x3000 -> 4, 3): the tile's box has its
        shape before the thumbnail loads."""
        c = self.candidate
        if not (c and c.width and c.height):
            return None
        d = math.gcd(c.width, c.height)
        w, h = c.width // d, c.height // d
        if w > 1000 or h > 1000:  # no small ratio: three digits are exact enough
            scale = max(w, h) / 1000
            w, h = max(1, round(w / scale)), max(1, round(h / scale))
        return w, h

    @property
    def acts(self) -> str:
        """What the action bar offers on this tile: l label, u use this image, o only this."""
        return (
            ("l" if self.can_label else "")
            + ("u" if self.can_use else "")
            + ("o" if self.candidate and self.siblings else "")
        )

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
        return bool(self.candidate) and not self.in_use and not self.photo_of_another

    @property
    def penalised(self) -> bool:
        """The winner choice ranked it below its model score (a blurred copy)."""
        c = self.candidate
        return bool(c and c.score is not None and c.rank_score is not None
                    and c.rank_score < c.score)  # fmt: skip

    @property
    def large_url(self) -> str:
        """The focused review's image: the candidate's 1280 px rendition (the original when it is
        smaller or Commons cannot render one), or the stored file for the current image."""
        c = self.candidate
        if c is None:
            return safe_link(self.thumb_url)
        from image_ranking.commons.renditions import rendition_or_original

        try:
            url = rendition_or_original(c, LARGE_WIDTH, original_if_unrenderable=True)
        except ValueError:
            url = c.image_url
        return safe_link(url)

    def details(self) -> dict[str, Any]:
        """What the focused review shows of this image (its facts and why it won or lost),
        computed only when a curator opens it: no tile of the grid carries it."""
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


def stored_size(image_file: FieldFile) -> int | None:
    """The stored file's size in bytes (one stat), or None when it cannot be read: a card
    still shows when a file went missing."""
    try:
        return image_file.size
    except (OSError, SuspiciousFileOperation):
        return None


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
