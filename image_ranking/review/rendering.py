"""POI cards and their tiles as HTML. Every caller (the page, the htmx answers, the run panel's
live cards) renders a card through here, so a card looks the same wherever it comes from.

A page of 20 POIs has about 220 tiles: the Django template language renders them in about
26 ms, Jinja2 in 7 (`bench/card_engines.py`); the page stays under its 100 ms at 100,000 POIs
either way, so the project keeps one template engine. Cards are rendered with the request
(the card's one form carries its CSRF token).
"""

from __future__ import annotations

from django.http import HttpRequest
from django.template.loader import get_template
from django.utils.safestring import SafeString, mark_safe

from image_ranking.review.cards import Card
from image_ranking.review.tiles import Tile

CARD_TEMPLATE = "image_ranking/_poi_card.html"
TILE_TEMPLATE = "image_ranking/_tile.html"
QUERY_FORM_TEMPLATE = "image_ranking/_search_query_form.html"


def _render(name: str, context: dict, request: HttpRequest) -> SafeString:
    return mark_safe(get_template(name).render(context, request))  # noqa: S308 (autoescaped)


def render_cards(
    request: HttpRequest, cards: list[Card], return_to: str, *, oob: bool = False
) -> SafeString:
    """The cards, one after the other; `oob` swaps each in place of its copy on the page."""
    template = get_template(CARD_TEMPLATE)
    context = {"return_to": return_to, "oob": oob}
    return mark_safe(  # noqa: S308 (each part autoescaped by the template)
        "".join(template.render({**context, "card": card}, request) for card in cards)
    )


def render_card(request: HttpRequest, card: Card, return_to: str) -> SafeString:
    return render_cards(request, [card], return_to)


def render_tile(request: HttpRequest, card: Card, tile: Tile, return_to: str) -> SafeString:
    return _render(TILE_TEMPLATE, {"card": card, "tile": tile, "return_to": return_to}, request)


def render_query_form(request: HttpRequest, card: Card, return_to: str) -> SafeString:
    return _render(QUERY_FORM_TEMPLATE, {"card": card, "return_to": return_to}, request)
