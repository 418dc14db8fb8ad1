"""Dashboard queries: counts, filters, one page of POI cards.

Every state ("missing", "fallback", "flagged", "ranked", "has image") is the one definition
on `RankablePoi.objects`, for the counts and the status filter alike, so a count always
equals the size of its filter. A page costs a fixed number of queries whatever its size
(see `review.cards`).
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, QuerySet

from cities.models import City, PoiList, PointOfInterest
from image_ranking.models import (
    Candidate,
    ImageTrainingData,
    PoiRanking,
    RankablePoi,
    RankingRunItem,
)
from image_ranking.review import live
from image_ranking.review.cards import Card, cards_of

# status filter value -> (label, the RankablePoi queryset method defining it)
STATES = {
    "missing": ("Missing image", "missing"),
    "fallback": ("Fallback image", "uses_fallback"),
    "flagged": ("Flagged", "flagged"),
    "ranked": ("Scored", "ranked"),  # candidates fetched and scored at least once
    "has_image": ("Has image", "with_real_image"),
}
STATUSES = {value: label for value, (label, _) in STATES.items()}
PER_PAGE_CHOICES = (10, 20, 50)
DEFAULT_PER_PAGE = 20
# sort value -> keys, each a (field, descending) pair, empty values last. The default ends with
# the city's name, the POI's name and pk (an index walks it: cities' `poi_city_name`); the
# others are a ranking field then the pk in the same direction, which an index of PoiRanking
# (field, poi) walks for the POIs that have the field (`page_ids`). Every sort ends with the
# pk, so pages are stable and a POI's neighbours follow from its own keys (`neighbour`).
_BY_NAME = (("city__name", False), ("name", False), ("pk", False))
SORT_KEYS = {
    "": _BY_NAME,
    "score": (("ranking__best_score", True), ("pk", True)),
    "status": (("ranking__status", False), ("pk", False)),
    "ranked": (("ranking__ranked_at", True), ("pk", True)),
}
SORT_LABELS = {
    "": "City and name",
    "score": "Best score",
    "status": "Status",
    "ranked": "Last ranked",
}


def ordering(sort: str, *, reverse: bool = False) -> list:
    """The ORDER BY of a sort (empty values last), or its exact reverse."""
    nulls = {"nulls_first": True} if reverse else {"nulls_last": True}
    return [
        F(path).desc(**nulls) if desc != reverse else F(path).asc(**nulls)
        for path, desc in SORT_KEYS[sort]
    ]


SORTS = {value: (label, ordering(value)) for value, label in SORT_LABELS.items()}


@dataclass(frozen=True)
class Filters:
    """The page's state in the URL: POI filters, page, and the calibration panel's model
    ("" = the configured one)."""

    city_id: int | None = None
    list_id: int | None = None
    status: str = ""
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    model: str = ""
    q: str = ""
    unlabelled: bool = False
    sort: str = ""

    def query(self, *, page: int | None = None) -> dict[str, str]:
        """The filter state as URL parameters (defaults left out)."""
        params: dict[str, str] = {}
        if self.q:
            params["q"] = self.q
        if self.city_id:
            params["city"] = str(self.city_id)
        if self.list_id:
            params["list"] = str(self.list_id)
        if self.status:
            params["status"] = self.status
        if self.unlabelled:
            params["unlabelled"] = "1"
        if self.sort:
            params["sort"] = self.sort
        if self.per_page != DEFAULT_PER_PAGE:
            params["per_page"] = str(self.per_page)
        if self.model:
            params["model"] = self.model
        page = self.page if page is None else page
        if page != 1:
            params["page"] = str(page)
        return params


def pois_in_lists(city_id: int | None = None, list_id: int | None = None):
    """POIs in at least one list (of `list_id`), in the city."""
    return RankablePoi.objects.in_lists(list_id).in_city(city_id)


def in_state(pois: QuerySet, status: str) -> QuerySet:
    """`pois` in the dashboard state `status` ("" = all)."""
    if not status:
        return pois
    return getattr(pois, STATES[status][1])()


def unlabelled(pois: QuerySet) -> QuerySet:
    """`pois` with at least one scored candidate that has no label (of that image, on that
    POI): what is left for curators to label."""
    labelled = ImageTrainingData.objects.filter(
        poi=OuterRef("poi"), image_url=OuterRef("image_url")
    )
    open_candidates = Candidate.objects.filter(poi=OuterRef("pk"), score__isnull=False).exclude(
        Exists(labelled)
    )
    return pois.filter(Exists(open_candidates))


@functools.cache
def _accent_classes() -> dict[str, str]:
    """{base letter: every accented form of it} over Latin-1 and Latin Extended-A (lower case;
    the search is case-insensitive anyway)."""
    classes: dict[str, set[str]] = {}
    for code in range(0xC0, 0x250):
        char = chr(code).lower()
        base = fold(char)
        if len(base) == 1 and base.isascii() and base.isalpha() and base != char:
            classes.setdefault(base, {base}).add(char)
    return {base: "".join(sorted(chars)) for base, chars in classes.items()}


_REGEX_SPECIALS = set(".^$*+?()[]{}|\\-/")
# Marks that names write several ways: a typed apostrophe finds the curly ones, a typed
# hyphen the en and em dashes.
_APOSTROPHES = "'\u2018\u2019\u02bc`\u00b4"
_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2212"
_PUNCTUATION_CLASSES = {
    **dict.fromkeys(_APOSTROPHES, f"[{_APOSTROPHES}]"),
    **dict.fromkeys(_DASHES, f"[{_DASHES}]"),  # "-" first in the class: a literal
}


def fold(text: str) -> str:
    """Lower case without accents: "Belém" -> "belem"."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def name_pattern(query: str) -> str:
    """A regular expression (the common subset of Python's, used by Django on SQLite, and
    PostgreSQL's) matching `query` in a name whatever its accents: each letter becomes the
    class of its accented forms ("belem" -> "b[eèéêë...]l[eèéêë...]m"), and an apostrophe or
    a dash the class of its typographic forms ("Sant'Ignazio" finds "Sant\u2019Ignazio")."""
    classes = _accent_classes()
    out = []
    for char in fold(query):
        if char in classes:
            out.append(f"[{classes[char]}]")
        elif char in _PUNCTUATION_CLASSES:
            out.append(_PUNCTUATION_CLASSES[char])
        elif char in _REGEX_SPECIALS:
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def search(pois: QuerySet, query: str) -> QuerySet:
    """POIs whose name contains `query`, ignoring case and accents ("Belem" finds "Belém",
    "belém" finds "Belem"), the same on SQLite and PostgreSQL: a case-insensitive regular
    expression in which each letter stands for its accented forms."""
    if not query:
        return pois
    return pois.filter(name__iregex=name_pattern(query))


# A count's lifetime when nothing the data stamp sees has changed: an admin's edit or an
# import that adds a POI to a list without saving it shows within this many seconds.
COUNTS_TTL = 60


def data_stamp() -> tuple:
    """What changes whenever a POI's state can: the last run item made or finished (every
    ranking ends its POI's item), the last POI saved (an image stored, chosen or imported) and
    the last ranking recorded (a fallback's origin). One query; each part an index look-up."""
    item = RankingRunItem._meta.db_table
    poi = PointOfInterest._meta.db_table
    ranking = PoiRanking._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT MAX(id) FROM {item}), (SELECT MAX(finished_at) FROM {item}), "  # noqa: S608 (table names)
            f"(SELECT MAX(updated_at) FROM {poi}), (SELECT MAX(ranked_at) FROM {ranking})"
        )
        return tuple(str(value) for value in cursor.fetchone())


def counts(city_id: int | None = None, list_id: int | None = None) -> dict[str, int]:
    """The numbers at the top of the page, within the city/list filter: each state counts the
    POIs matching the condition its own filter applies (one pass over the POIs, not one
    sub-query per state). That pass reads every POI in lists (about 80 ms at 100,000), so it
    is kept (per process) until the data stamp changes; the labels are counted each time."""
    stamp = data_stamp()
    key = "ir-counts-" + hashlib.sha256(repr((city_id, list_id, stamp)).encode()).hexdigest()
    totals = cache.get(key)
    if totals is None:
        totals = state_counts(city_id, list_id)
        cache.set(key, totals, COUNTS_TTL)
    labels = ImageTrainingData.objects.all()
    if city_id or list_id:
        labels = labels.filter(poi__in=pois_in_lists(city_id, list_id).values("pk"))
    return {**totals, "labelled": labels.count()}


def state_counts(city_id: int | None = None, list_id: int | None = None) -> dict[str, int]:
    pois = pois_in_lists(city_id, list_id)
    return pois.aggregate(
        in_lists=Count("pk"),
        **{
            status: Count("pk", filter=RankablePoi.objects.condition(method))
            for status, (_, method) in STATES.items()
        },
    )


LIST_OPTIONS_MAX = 100  # more lists than this are offered once a city is chosen


def filter_options(
    city_id: int | None = None, list_id: int | None = None
) -> tuple[list[City], list[PoiList], bool]:
    """The cities, the lists the List filter offers (those of the chosen city; every city's
    when none is chosen and there are at most LIST_OPTIONS_MAX, else only the chosen list),
    and whether lists were left out (the page then says to choose a city)."""
    cities = list(City.objects.only("pk", "name").order_by("name"))
    lists = PoiList.objects.select_related("city").only("pk", "title", "city__name")
    if city_id:
        return cities, list(lists.filter(city_id=city_id).order_by("title")), False
    shown = list(lists.order_by("city__name", "title")[: LIST_OPTIONS_MAX + 1])
    if len(shown) <= LIST_OPTIONS_MAX:
        return cities, shown, False
    return cities, list(lists.filter(pk=list_id)) if list_id else [], True


def matching(filters: Filters) -> QuerySet:
    """The POIs of the view the filters describe (unordered)."""
    pois = in_state(pois_in_lists(filters.city_id, filters.list_id), filters.status)
    pois = search(pois, filters.q)
    if filters.unlabelled:
        pois = unlabelled(pois)
    return pois


def neighbour(pois: QuerySet, sort: str, poi_id: int, *, forward: bool = True) -> int | None:
    """The POI after (or before) `poi_id` among `pois` in the order of `sort`, found from its
    own sort keys (two small queries, whatever the size of the view; the POI itself need not
    match the filters any more, e.g. once its last candidate is labelled)."""
    paths = [path for path, _ in SORT_KEYS[sort]]
    values = RankablePoi.objects.filter(pk=poi_id).values_list(*paths).first()
    if values is None:
        return None
    if sort:
        return _ranking_neighbour(pois, sort, values, forward)
    return _name_neighbour(pois, values, forward)


def _name_neighbour(pois: QuerySet, values: tuple, forward: bool) -> int | None:
    """`neighbour` in the default order (city name, name, pk) by seeks along the POIs'
    (city, name, id) index: the same name's next pk, the city's next name, the next city."""
    city, name, pk = values
    more, order = ("gt", F("pk").asc()) if forward else ("lt", F("pk").desc())
    by_name = [F("name").asc(), F("pk").asc()] if forward else [F("name").desc(), F("pk").desc()]
    steps = (
        pois.filter(city__name=city, name=name, **{f"pk__{more}": pk}).order_by(order),
        pois.filter(city__name=city, **{f"name__{more}": name}).order_by(*by_name),
        pois.filter(**{f"city__name__{more}": city}).order_by(*ordering("", reverse=not forward)),
    )
    for rows in steps:
        found = rows.values_list("pk", flat=True).first()
        if found:
            return found
    return None


def _ranking_neighbour(pois: QuerySet, sort: str, values: tuple, forward: bool) -> int | None:
    """`neighbour` for a sort on a ranking field, in the two parts `page_ids` reads: the POIs
    with the field along PoiRanking's (field, poi) index from the POI's own value and pk, then
    those without it by pk. Each query is a seek into an index from where the POI stands."""
    (field, desc), (_, pk_desc) = SORT_KEYS[sort]
    value, pk = values
    keyed = pois.filter(**{f"{field}__isnull": False})
    rest = pois.filter(**{f"{field}__isnull": True})
    first = lambda rows: rows.values_list("pk", flat=True).first()  # noqa: E731
    smaller = desc == forward  # the rows met next have smaller values
    step = "lt" if pk_desc == forward else "gt"  # the pks met next, among equal values
    by_pk = F("pk").desc() if pk_desc == forward else F("pk").asc()
    along = F("ranking__poi").desc() if smaller else F("ranking__poi").asc()
    key_order = (F(field).desc() if smaller else F(field).asc(), along)
    if value is None:
        found = first(rest.filter(**{f"pk__{step}": pk}).order_by(by_pk))
        return found if found or forward else first(keyed.order_by(*key_order))
    # Ties first (the same value, the next pks: one index seek), then the next values.
    tie = keyed.filter(**{field: value, f"ranking__poi__{step}": pk}).order_by(along)
    found = first(tie) or first(
        keyed.filter(**{f"{field}__{'lt' if smaller else 'gt'}": value}).order_by(*key_order)
    )
    return found if found or not forward else first(rest.order_by(by_pk))


@dataclass(frozen=True)
class PageOfPois:
    """Where a page sits in its view. `total` is known from the header counts when only the
    city, list and status filter (a cached count); with a search or the unlabelled filter it
    is None and the page only knows whether another follows (it fetched one POI more)."""

    number: int
    per_page: int
    total: int | None
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def num_pages(self) -> int | None:
        if self.total is None:
            return None
        return max(1, -(-self.total // self.per_page))


def view_total(filters: Filters, header: dict[str, int] | None) -> int | None:
    """The size of the view when a header count says it (no search, no unlabelled filter)."""
    if header is None or filters.q or filters.unlabelled:
        return None
    return header[filters.status or "in_lists"]


def page_of_cards(
    filters: Filters, default_threshold: float, header: dict[str, int] | None = None
) -> tuple[PageOfPois, list[Card]]:
    """One page of cards: the page's POI ids in the view's order (LIMIT/OFFSET, one POI more
    to know whether a page follows), then their cards. Every sort ends with the POI's name and
    pk on top of an index (`PointOfInterest` city, name, id), so the default order walks the
    index and stops after the page instead of sorting every POI of the view. `header`: the
    counts, whose matching figure is the view's total (see `view_total`)."""
    total = view_total(filters, header)
    number = filters.page
    if total is not None:
        number = min(number, max(1, -(-total // filters.per_page)))
    start = (number - 1) * filters.per_page
    ids = page_ids(matching(filters), filters.sort, start, filters.per_page + 1)
    page = PageOfPois(number, filters.per_page, total, len(ids) > filters.per_page)
    return page, cards_for(ids[: filters.per_page], default_threshold)


def page_ids(pois: QuerySet, sort: str, start: int, count: int) -> list[int]:
    """`count` POI ids from position `start` of `pois` in the order of `sort`. A sort on a
    ranking field reads in two parts, each along an index: the POIs that have the field (an
    inner join walking PoiRanking's (field, poi) index), then those without it, by pk. The
    second part needs the first's size only for a page that starts past it."""
    rows = pois.order_by(*SORTS[sort][1]).values_list("pk", flat=True)
    if not sort:
        return list(rows[start : start + count])
    (field, desc), (_, pk_desc) = SORT_KEYS[sort]
    poi = F("ranking__poi").desc() if pk_desc else F("ranking__poi").asc()
    pk = F("pk").desc() if pk_desc else F("pk").asc()
    keyed = pois.filter(**{f"{field}__isnull": False}).order_by(
        F(field).desc() if desc else F(field).asc(), poi
    )
    ids = list(keyed.values_list("pk", flat=True)[start : start + count])
    if len(ids) == count:
        return ids
    skip = 0 if ids or not start else max(0, start - keyed.count())
    rest = pois.filter(**{f"{field}__isnull": True}).order_by(pk).values_list("pk", flat=True)
    return ids + list(rest[skip : skip + count - len(ids)])


def cards_for(poi_ids: list[int], default_threshold: float) -> list[Card]:
    """The cards of these POIs, in the given order (missing POIs left out)."""
    if not poi_ids:
        return []
    by_pk = cards_of(poi_ids, default_threshold)
    cards = [by_pk[pk] for pk in poi_ids if pk in by_pk]
    live.attach(cards, live.live_items([c.poi.pk for c in cards]))
    return cards


def one_card(poi_id: int, default_threshold: float) -> Card | None:
    cards = cards_for([poi_id], default_threshold)
    return cards[0] if cards else None
