"""The Jinja2 environment of the dashboard's cards (`review.rendering`): the filters their
templates use, each the Django filter of the same name or a faster equivalent."""

from __future__ import annotations

from django.template.defaultfilters import truncatechars
from django.utils.text import capfirst
from jinja2 import Environment, StrictUndefined

from image_ranking.templatetags.ranking_format import fixed


def environment(**options) -> Environment:
    # Strict: a misspelt name or a look-up on None fails the render (and the tests) instead of
    # printing nothing, as the Django language would.
    # (Django's backend sets its own default, so this one is not a default.) Escaping is on,
    # whatever the settings say: the cards show text from Commons and from curators.
    options["undefined"] = StrictUndefined
    options.pop("autoescape", None)
    env = Environment(autoescape=True, **options)
    env.filters.update(fixed=fixed, capfirst=capfirst, truncatechars=truncatechars)
    return env
