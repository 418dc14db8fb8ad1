"""The grid's sorts, and a page or a neighbour of a POI in one of them, along indexes.

Every sort ends with the pk, so pages are stable and a POI's neighbours follow from its own
keys (`neighbour`): a move of the focused review costs the same at any size of the view.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import F, QuerySet
from django.db.models.expressions import RawSQL

from cities.models import City, PointOfInterest
from image_ranking.models import RankablePoi

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


def neighbour(pois: QuerySet, sort: str, poi_id: int, *, forward: bool = True) -> int | None:
    """The POI after (or before) `poi_id` among `pois` in the order of `sort`, found from its
    own sort keys (a few small queries, whatever the size of the view; the POI itself need not
    match the filters any more, e.g. once its last candidate is labelled)."""
    if sort:
        paths = [path for path, _ in SORT_KEYS[sort]]
        values = RankablePoi.objects.filter(pk=poi_id).values_list(*paths).first()
        return _ranking_neighbour(pois, sort, values, forward) if values else None
    values = RankablePoi.objects.filter(pk=poi_id).values_list("city_id", "city__name", "name")
    found = values.first()
    return _name_neighbour(pois, (*found, poi_id), forward) if found else None


def _name_neighbour(pois: QuerySet, values: tuple, forward: bool) -> int | None:
    """`neighbour` in the default order (city name, name, pk) by seeks along the POIs'
    (city, name, id) index: the same name's next pk, the city's next name, then the first POI
    of the next city that has one in the view."""
    city_id, city, name, pk = values
    more, order = ("gt", F("pk").asc()) if forward else ("lt", F("pk").desc())
    by_name = [F("name").asc(), F("pk").asc()] if forward else [F("name").desc(), F("pk").desc()]
    steps = (
        pois.filter(city_id=city_id, name=name, **{f"pk__{more}": pk}).order_by(order),
        pois.filter(city_id=city_id, **{f"name__{more}": name}).order_by(*by_name),
    )
    for rows in steps:
        found = rows.values_list("pk", flat=True).first()
        if found:
            return found
    found = by_city_name(pois, 0, 1, past=city, reverse=not forward)
    return found[0] if found else None


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


def page_ids(pois: QuerySet, sort: str, start: int, count: int) -> list[int]:
    """`count` POI ids from position `start` of `pois` in the order of `sort`. A sort on a
    ranking field reads in two parts, each along an index: the POIs that have the field (an
    inner join walking PoiRanking's (field, poi) index), then those without it, by pk. The
    second part needs the first's size only for a page that starts past it."""
    if not sort:
        return by_city_name(pois, start, count)
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


CITY, POI = "page_city", "page_poi"  # the aliases of the walk's rows


def by_city_name(
    pois: QuerySet, start: int, count: int, *, past: str | None = None, reverse: bool = False
) -> list[int]:
    """`count` POI ids from position `start` of `pois` in the default order (city name, name,
    pk), read along the indexes city by city, so a page costs what it walks, not a sort of
    the whole view: the databases' own plans for Django's ORDER BY over the join with the
    city scanned and sorted every POI of the view (at 100,000 POIs, page 1's ids took 67 ms
    on SQLite, 255 ms with the label filter, and 70 ms on PostgreSQL; 0.2 ms this way). One
    query. `past`: only the cities after this name (before it with `reverse`, the order
    backwards), for a neighbour in the next city."""
    step = "<" if reverse else ">"
    where = f'"{CITY}"."name" {step} %s' if past is not None else "1 = 1"
    direction = "DESC" if reverse else "ASC"
    order = f'"{CITY}"."name" {direction}, page.name {direction}, page.pk {direction}'
    city = City._meta.db_table
    if connection.vendor == "postgresql":
        # Each city's first POIs of the view along the (city, name, id) index (a LATERAL
        # join), then those few sorted by city name.
        inner = (
            pois.filter(city_id=RawSQL(f'"{CITY}"."id"', ()))  # noqa: S611 (a constant alias)
            .order_by(*(("-name", "-pk") if reverse else ("name", "pk")))
            .values_list("pk", "name")[: start + count]
        )
        sql, params = inner.query.sql_with_params()
        query = (
            f'SELECT page.pk FROM "{city}" AS "{CITY}" '  # noqa: S608 (names and Django's SQL)
            f"CROSS JOIN LATERAL ({sql}) AS page(pk, name) WHERE {where} ORDER BY {order} "
            "LIMIT %s OFFSET %s"
        )
    else:
        # SQLite: the cities in name order, each one's POIs along the (city, name, id) index
        # (CROSS JOIN keeps that loop order, so no sort), each POI tested against the view.
        inner = pois.filter(pk=RawSQL(f'"{POI}"."id"', ())).values("pk")  # noqa: S611 (alias)
        sql, params = inner.query.sql_with_params()
        poi = PointOfInterest._meta.db_table
        query = (
            f'SELECT page.pk FROM "{city}" AS "{CITY}" CROSS JOIN (SELECT "{POI}"."id" AS pk, '  # noqa: S608 (names and Django's SQL)
            f'"{POI}"."name" AS name, "{POI}"."city_id" AS city_id FROM "{poi}" AS "{POI}" '
            f"WHERE EXISTS ({sql})) AS page "
            f'WHERE page.city_id = "{CITY}"."id" AND {where} ORDER BY {order} LIMIT %s OFFSET %s'
        )
    args = (*params, *(() if past is None else (past,)), count, start)
    with connection.cursor() as cursor:
        cursor.execute(query, args)
        return [row[0] for row in cursor.fetchall()]
