"""The POI cards of one page in each template engine: the price of one engine.

A page of 20 POIs x 10 candidates (about 220 tiles) is rendered by the dashboard's own Django
templates (`review.rendering`, through the project's settings and context processors) and by
the same markup in Jinja2 (bench/card_templates/, the cards as they were until one engine was
kept; rendered as Django's Jinja2 backend did, autoescaped). The bench checks that both give
the same HTML (blanks between tags and the per-render CSRF mask aside) and prints the median
and best of each and the ratio.

    .venv/bin/python bench/card_engines.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JINJA_TEMPLATES = Path(__file__).resolve().parent / "card_templates"


def timed(render, repeat: int) -> tuple[float, float, str]:
    times, html = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        html = render()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times), html


def same(html: str) -> str:
    """Blanks between tags and the (per render masked) CSRF token aside."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "csrf", html)
    return re.sub(r">\s+", ">", re.sub(r"\s+<", "<", html)).strip()


def jinja_environment():
    """What the project's Jinja2 environment was: autoescaped, strict, Django's filters."""
    from django.template.defaultfilters import truncatechars
    from django.utils.text import capfirst
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from image_ranking.templatetags.ranking_format import fixed

    env = Environment(
        loader=FileSystemLoader(JINJA_TEMPLATES), autoescape=True, undefined=StrictUndefined
    )
    env.filters.update(fixed=fixed, capfirst=capfirst, truncatechars=truncatechars)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    with tempfile.TemporaryDirectory(prefix="bench-cards-") as tmp:
        from dashboard import make_data, setup_django

        setup_django(ROOT, str(Path(tmp) / "cards.sqlite3"))
        make_data(20, 10)
        from django.contrib.auth.models import AnonymousUser
        from django.middleware.csrf import get_token
        from django.test import RequestFactory
        from django.utils.safestring import mark_safe

        from image_ranking.review import rendering, selectors

        _, cards = selectors.page_of_cards(selectors.Filters(), 4.5)
        request = RequestFactory().get("/image-ranking/")
        request.user = AnonymousUser()
        card_template = jinja_environment().get_template("image_ranking/poi_card.html")

        def jinja_cards() -> str:
            csrf = mark_safe(
                f'<input type="hidden" name="csrfmiddlewaretoken" value="{get_token(request)}">'
            )
            context = {"return_to": "", "oob": False, "csrf_input": csrf}
            return "".join(card_template.render({**context, "card": c}) for c in cards)

        def django_cards() -> str:
            return str(rendering.render_cards(request, cards, ""))

        for render in (django_cards, jinja_cards):  # warm: templates compiled and cached
            render()
        jinja = timed(jinja_cards, args.repeat)
        django = timed(django_cards, args.repeat)

    tiles = django[2].count('class="tile')
    print(f"{len(cards)} cards, {tiles} tiles; median (best) of {args.repeat} renders; "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    for name, (ms, best, html) in (("Django templates", django), ("Jinja2", jinja)):
        print(f"{name:<18}{ms:7.1f} ms ({best:5.1f}) {len(html) / 1024:6.0f} KiB")
    print(
        f"Django / Jinja2: {django[0] / jinja[0]:.1f}x, {django[0] - jinja[0]:.1f} ms a page; "
        f"same HTML: {same(django[2]) == same(jinja[2])}"
    )


if __name__ == "__main__":
    main()
