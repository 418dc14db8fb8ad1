"""Tiles: one image of a POI (its current image or a candidate) with its label state, as
plain objects built from prefetched rows, so templates never touch the database (the cards
that hold them: `review.cards`; the facts the focused review shows: `review.facts`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.core.exceptions import SuspiciousFileOperation
from django.db.models.fields.files import FieldFile
from django.urls import reverse

from image_ranking.commons.renditions import rendition_or_original
from image_ranking.models import Candidate, ImageTrainingData
from image_ranking.pipeline.shared_photos import is_taken_reason
from image_ranking.review.labels import rank_score

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
        try:
            url = rendition_or_original(c, LARGE_WIDTH, original_if_unrenderable=True)
        except ValueError:
            url = c.image_url
        return safe_link(url)

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


def stored_size(image_file: FieldFile) -> int | None:
    """The stored file's size in bytes (one stat), or None when it cannot be read: a card
    still shows when a file went missing."""
    try:
        return image_file.size
    except (OSError, SuspiciousFileOperation):
        return None
