"""`fixed`: a number with a fixed number of decimals, for the dashboard's many scores.

Django's `floatformat` goes through Decimal and localisation for every value; a page of 20
cards formats about 500 scores, and that was a fifth of its render time. Scores need neither.
"""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def fixed(value: object, digits: int = 2) -> str:
    """`4.5|fixed:2` -> "4.50"; None and non-numbers -> "" (as floatformat gives "")."""
    try:
        return f"{float(value):.{int(digits)}f}"
    except (TypeError, ValueError):
        return ""
