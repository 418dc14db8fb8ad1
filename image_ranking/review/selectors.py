"""Dashboard queries: the view the filters describe, and one page of its POI cards.

A view is the POIs in lists of the city/list scope that match every filter of the URL
(status, flag reason, best score, label, damage, image origin: `review.facets`), the name
search (`review.search`), in the order of its sort (`review.ordering`). A page costs a fixed
number of queries whatever its size (see `review.cards`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from django.db.models import QuerySet

from cities.models import City, PoiList
from image_ranking.review import facets, live
from image_ranking.review.cards import Card, cards_of
from image_ranking.review.facets import pois_in_lists
from image_ranking.review.ordering import page_ids
from image_ranking.review.search import search

PER_PAGE_CHOICES = (10, 20, 50)
DEFAULT_PER_PAGE = 20
FACETS = tuple(group.param for group in facets.GROUPS)  # Filters' fields of the same names


@dataclass(frozen=True)
class Filters:
    """The page's state in the URL: the scope, the filters, search, sort, page, and the
    calibration panel's model ("" = the configured one)."""

    city_id: int | None = None
    list_id: int | None = None
    status: str = ""
    flag: str = ""
    score: str = ""
    label: str = ""
    damage: str = ""
    origin: str = ""
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    model: str = ""
    q: str = ""
    sort: str = ""

    def replace(self, **changes) -> Filters:
        return replace(self, **changes)

    def active(self) -> list[tuple[str, str]]:
        """The filters set, as (group, value)."""
        return [(param, getattr(self, param)) for param in FACETS if getattr(self, param)]

    def query(self, *, page: int | None = None) -> dict[str, str]:
        """The filter state as URL parameters (defaults left out)."""
        params: dict[str, str] = {}
        if self.q:
            params["q"] = self.q
        if self.city_id:
            params["city"] = str(self.city_id)
        if self.list_id:
            params["list"] = str(self.list_id)
        params.update(self.active())
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
    pois = pois_in_lists(filters.city_id, filters.list_id)
    for param, value in filters.active():
        pois = pois.filter(facets.BY_PARAM[param].condition(value))
    return search(pois, filters.q)


@dataclass(frozen=True)
class PageOfPois:
    """Where a page sits in its view. `total` is known from the counts when at most one filter
    is set (a cached count) and no search; else it is None and the page only knows whether
    another follows (it fetched one POI more)."""

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


def view_total(filters: Filters, found: dict | None) -> int | None:
    """The size of the view when the counts say it: one filter's count, POIs in lists when
    none is set, 0 when any filter set counts none; None with a search or several filters.
    `found`: `counts.facet_counts` (with "in_lists")."""
    if found is None:
        return None
    known = [found.get(param, {}).get(value) for param, value in filters.active()]
    if 0 in known:
        return 0
    if filters.q or len(known) > 1:
        return None
    return known[0] if known else found["in_lists"]


def page_of_cards(
    filters: Filters, default_threshold: float, found: dict | None = None
) -> tuple[PageOfPois, list[Card]]:
    """One page of cards: the page's POI ids in the view's order (LIMIT/OFFSET, one POI more
    to know whether a page follows), then their cards. Every sort ends on top of an index, so
    a page walks it and stops after the page instead of sorting every POI of the view.
    `found`: the counts, which may say the view's total (`view_total`); an empty view costs
    no query then."""
    total = view_total(filters, found)
    number = filters.page
    if total is not None:
        number = min(number, max(1, -(-total // filters.per_page)))
    start = (number - 1) * filters.per_page
    ids = (
        [] if total == 0 else page_ids(matching(filters), filters.sort, start, filters.per_page + 1)
    )
    page = PageOfPois(number, filters.per_page, total, len(ids) > filters.per_page)
    return page, cards_for(ids[: filters.per_page], default_threshold)


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
