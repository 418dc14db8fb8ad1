"""The focused review of one POI: its current image and one candidate large, side by side
(stacked on a phone), the candidate's facts and why it won or lost, and links to every
neighbour a curator moves to (previous/next candidate and POI, next unlabelled, next flagged)
within the view the grid's filters describe. The URL says which POI and candidate
(`review/?poi=5&img=c123&<filters>`), so a curator can send it.

Rendering lives here and not in the view module so that the actions' htmx answers
(`answers.answer_card` with `view=focus`) show the same panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse

from image_ranking.review import calibration, selectors
from image_ranking.review.cards import Card, Tile
from image_ranking.review.selectors import Filters


@dataclass(frozen=True)
class Focus:
    filters: Filters
    poi_id: int
    image: str = ""  # "c<candidate id>"; "" = the POI's first candidate

    def url(self, poi_id: int | None = None, image: str = "") -> str:
        params = {"poi": poi_id or self.poi_id}
        if image:
            params["img"] = image
        return reverse("image_ranking:focus") + "?" + urlencode({**params, **self.filters.query()})


def focused_tile(card: Card, image: str) -> Tile | None:
    """The candidate the URL names, else the card's first (best) one; None without any."""
    return next((t for t in card.candidates if t.key == image), None) or (
        card.candidates[0] if card.candidates else None
    )


def step(card: Card, tile: Tile | None, delta: int) -> Tile | None:
    """The candidate `delta` places from `tile` in the card, None past either end."""
    if tile is None or tile not in card.candidates:
        return None
    i = card.candidates.index(tile) + delta
    return card.candidates[i] if 0 <= i < len(card.candidates) else None


def panel_context(focus: Focus) -> dict | None:
    """Everything `_focus.html` needs (a fixed number of queries), None when the POI is gone."""
    card = selectors.one_card(focus.poi_id, calibration.current_threshold())
    if card is None:
        return None
    tile = focused_tile(card, focus.image)
    view = selectors.matching(focus.filters)
    sort = focus.filters.sort

    def poi_link(pois, forward: bool = True) -> str:
        pk = selectors.neighbour(pois, sort, card.poi.pk, forward=forward)
        return focus.url(pk) if pk else ""

    next_poi, prev_poi = poi_link(view), poi_link(view, forward=False)
    after, before = step(card, tile, 1), step(card, tile, -1)
    query = urlencode(focus.filters.query())
    grid_url = reverse("image_ranking:dashboard") + (f"?{query}" if query else "")
    grid_url += f"#poi-{card.poi.pk}"
    nav = {
        "prev_image": focus.url(image=before.key) if before else prev_poi,
        "next_image": focus.url(image=after.key) if after else next_poi,
        "prev_poi": prev_poi,
        "next_poi": next_poi,
        "next_unlabelled": poi_link(selectors.unlabelled(view)),
        "next_flagged": poi_link(view.flagged()),
    }
    return {
        "card": card,
        "tile": tile,
        "details": tile.details() if tile else None,
        "current": card.current,
        "current_details": card.current.details() if card.current else None,
        "position": (card.candidates.index(tile) + 1) if tile else 0,
        "focus": focus,
        "return_to": urlencode(focus.filters.query()),
        "image_key": tile.key if tile else "",
        "grid_url": grid_url,
        "nav": nav,
        "nav_links": [
            ("grid", "Grid", "Esc", grid_url, ""),
            ("prev-image", "← Candidate", "k", nav["prev_image"], "No earlier image."),
            ("next-image", "Candidate →", "j", nav["next_image"], "No more images."),
            ("prev-poi", "← POI", "p", nav["prev_poi"], "This is the first POI of the view."),
            ("next-poi", "POI →", "n", nav["next_poi"], "This is the last POI of the view."),
            (
                "next-unlabelled",
                "Next unlabelled",
                "l",
                nav["next_unlabelled"],
                "No POI after this one has unlabelled candidates.",
            ),
            (
                "next-flagged",
                "Next flagged",
                "f",
                nav["next_flagged"],
                "No flagged POI after this one.",
            ),
        ],
        "strip_base": focus.url(),
        "focus_self": focus.url(image=tile.key if tile else ""),
    }


def advanced(focus: Focus) -> Focus:
    """Where a label given with a key goes next: the POI's next candidate, else the next POI."""
    card = selectors.one_card(focus.poi_id, calibration.current_threshold())
    if card is None:
        return focus
    after = step(card, focused_tile(card, focus.image), 1)
    if after is not None:
        return Focus(focus.filters, focus.poi_id, after.key)
    pk = selectors.neighbour(selectors.matching(focus.filters), focus.filters.sort, focus.poi_id)
    return Focus(focus.filters, pk, "") if pk else focus


def panel_html(request: HttpRequest, context: dict) -> str:
    return render_to_string("image_ranking/_focus.html", context, request)
