"""POI cards and their tiles as HTML, through the Jinja2 engine.

A page of 20 POIs has about 220 tiles. The Django template language spent about 80 ms on
them; Jinja2 compiles the same markup to Python and renders it in a fraction of that, so the
page keeps its 100 ms budget. Every caller (the page, the htmx answers, the run panel's live
cards) renders a card through here, so a card looks the same wherever it comes from. Cards are
rendered with the request: Django's Jinja2 backend gives them `csrf_input` (one form a card).
"""

from __future__ import annotations

from django.http import HttpRequest
from django.template import engines
from django.utils.safestring import SafeString, mark_safe

from image_ranking.review.cards import Card, Tile

CARD_TEMPLATE = "image_ranking/poi_card.html"
TILE_TEMPLATE = "image_ranking/tile.html"
QUERY_FORM_TEMPLATE = "image_ranking/search_query_form.html"


def _render(name: str, context: dict, request: HttpRequest) -> SafeString:
    html = engines["jinja2"].get_template(name).render(context, request)
    return mark_safe(html)  # noqa: S308 (Jinja2 escaped every value: autoescape is on)


def render_cards(
    request: HttpRequest, cards: list[Card], return_to: str, *, oob: bool = False
) -> SafeString:
    """The cards, one after the other; `oob` swaps each in place of its copy on the page."""
    context = {"return_to": return_to, "oob": oob}
    return mark_safe(  # noqa: S308 (each part escaped by Jinja2)
        "".join(_render(CARD_TEMPLATE, {**context, "card": card}, request) for card in cards)
    )


def render_card(request: HttpRequest, card: Card, return_to: str) -> SafeString:
    return render_cards(request, [card], return_to)


def render_tile(request: HttpRequest, card: Card, tile: Tile, return_to: str) -> SafeString:
    return _render(TILE_TEMPLATE, {"card": card, "tile": tile, "return_to": return_to}, request)


def render_query_form(request: HttpRequest, card: Card, return_to: str) -> SafeString:
    return _render(QUERY_FORM_TEMPLATE, {"card": card, "return_to": return_to}, request)
