"""POI cards and their tiles as HTML, through the Jinja2 engine.

A page of 20 POIs has about 220 tiles, each with a dozen conditions and a label form. The
Django template language spent about 80 ms on them (some 13,000 variable look-ups a page);
Jinja2 compiles the same markup to Python and renders it in a fraction of that, so the page
keeps its 100 ms budget. Everything else on the dashboard stays a Django template, and every
caller (the page, the htmx answers, the run panel's live cards) renders a card through here,
so a card looks the same wherever it comes from.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template import engines
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from image_ranking.review.cards import Card, Tile

CARD_TEMPLATE = "image_ranking/poi_card.html"
TILE_TEMPLATE = "image_ranking/tile.html"
QUERY_FORM_TEMPLATE = "image_ranking/search_query_form.html"


def _template(name: str):
    # Rendered without the request: Django's backend would then replace `csrf_input` with a
    # lazy one that masks the token anew for each of the page's 240 forms.
    return engines["jinja2"].get_template(name)


def csrf_input(request: HttpRequest) -> SafeString:
    """The hidden CSRF field, made once per answer and shared by all its forms (Django's tag
    makes a fresh mask per form; one mask per response is what protects against BREACH)."""
    return format_html(
        '<input type="hidden" name="csrfmiddlewaretoken" value="{}">', get_token(request)
    )


def render_cards(
    request: HttpRequest, cards: list[Card], return_to: str, *, oob: bool = False
) -> SafeString:
    """The cards, one after the other; `oob` swaps each in place of its copy on the page."""
    template = _template(CARD_TEMPLATE)
    context = {"return_to": return_to, "csrf_input": csrf_input(request), "oob": oob}
    return mark_safe(  # noqa: S308 (Jinja2 escaped every value: autoescape is on)
        "".join(template.render({**context, "card": card}) for card in cards)
    )


def render_card(request: HttpRequest, card: Card, return_to: str) -> SafeString:
    return render_cards(request, [card], return_to)


def render_tile(request: HttpRequest, card: Card, tile: Tile, return_to: str) -> SafeString:
    context = {"card": card, "tile": tile, "return_to": return_to}
    context["csrf_input"] = csrf_input(request)
    return mark_safe(_template(TILE_TEMPLATE).render(context))  # noqa: S308


def render_query_form(request: HttpRequest, card: Card, return_to: str) -> SafeString:
    context = {"card": card, "return_to": return_to, "csrf_input": csrf_input(request)}
    return mark_safe(_template(QUERY_FORM_TEMPLATE).render(context))  # noqa: S308
