"""Which place a candidate shows, from what the one search request already returns: its file
title and its visible categories.

A candidate *names* a POI when every significant word of the POI's name (accents folded,
small words such as "of", "da", "the" left out, and the city's own name optional: "Lisbon
Botanical Gardens" needs "botanical" and "gardens") appears in its title or categories. A
candidate that names another POI of the same city more specifically than this one ("File:Ajuda
Botanical Gardens.jpg" for "Lisbon Botanical Gardens"), and does not name this one as fully,
shows that other place: it cannot win here. Among the rest, one that names this POI outranks
one that names nothing; beauty decides within each group.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from cities.models import PointOfInterest

NAMES_THIS = 2
NEUTRAL = 1
NAMES_OTHER = 0

# Words that say nothing about which place it is, in the city guide's languages.
STOPWORDS = frozenset(
    {
        *("a", "an", "and", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to"),
        *("with", "da", "das", "de", "del", "della", "dei", "degli", "delle", "di", "do"),
        *("dos", "du", "e", "el", "en", "et", "la", "las", "le", "les", "lo", "los", "o", "y"),
        *("der", "die", "und", "von", "zu", "im", "am"),
        *("file", "jpg", "jpeg", "png", "gif", "webp", "tif", "tiff", "img", "dsc", "photo"),
        "view",
    }
)
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> set[str]:
    """The significant words of `text`: lower-case, accents folded, small words dropped."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return {w for w in _WORD.findall(plain) if len(w) > 1 and w not in STOPWORDS}


@dataclass(frozen=True)
class Place:
    """A POI as a set of words a candidate must contain to name it."""

    name: str
    required: frozenset[str]

    @classmethod
    def of(cls, name: str, city_name: str = "") -> Place:
        all_words = words(name)
        required = all_words - words(city_name) or all_words
        return cls(name, frozenset(required))

    def named_in(self, text_words: set[str]) -> bool:
        return bool(self.required) and self.required <= text_words


@dataclass
class Evidence:
    """Why a candidate counts as this POI's, for the ranking and for the curator's card."""

    tier: int = NEUTRAL
    title_words: list[str] = field(default_factory=list)  # this POI's words in the title
    categories: list[str] = field(default_factory=list)  # categories naming this POI
    other_poi: str = ""  # the other POI of the city it names instead
    chosen: bool = False  # a curator named this file for the POI

    def summary(self) -> str:
        if self.chosen:
            return "a file a curator chose for this POI"
        if self.tier == NAMES_OTHER:
            return f"names another POI of the city: {self.other_poi}"
        parts = []
        if self.title_words:
            parts.append("title names " + ", ".join(self.title_words))
        if self.categories:
            parts.append("category " + "; ".join(self.categories))
        return " · ".join(parts)


def assess(
    place: Place, title: str, categories: Iterable[str], others: Iterable[Place]
) -> Evidence:
    """How `title` and `categories` relate the candidate to `place` and to the city's others."""
    categories = list(categories)
    title_words = words(title.removeprefix("File:").rsplit(".", 1)[0])
    category_words = [(c, words(c)) for c in categories]
    text = title_words.union(*(w for _, w in category_words))
    evidence = Evidence(
        title_words=sorted(place.required & title_words),
        categories=[c for c, w in category_words if place.named_in(w | title_words)][:3],
    )
    names_this = place.named_in(text)
    for other in others:
        more_specific = not other.required <= place.required
        if more_specific and other.named_in(text) and not _as_fully(place, other, text):
            evidence.tier, evidence.other_poi = NAMES_OTHER, other.name
            return evidence
    evidence.tier = NAMES_THIS if names_this else NEUTRAL
    return evidence


def _as_fully(place: Place, other: Place, text: set[str]) -> bool:
    """The text names `place` at least as specifically as `other` (both fully named, and
    `place` needs as many words): then it is this POI's photo, not the other's."""
    return place.named_in(text) and len(place.required) >= len(other.required)


def city_places(poi) -> tuple[Place, list[Place]]:
    """The POI and the other POIs of its city, as Places (one query)."""
    city_name = poi.city.name
    names = (
        PointOfInterest.objects.filter(city_id=poi.city_id)
        .exclude(pk=poi.pk)
        .values_list("name", flat=True)
        .distinct()
    )
    others = [Place.of(name, city_name) for name in names if name != poi.name]
    return Place.of(poi.name, city_name), others
