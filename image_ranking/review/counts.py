"""The dashboard's counts within the city/list scope: the header's (POIs in lists, each state,
labels) and every filter option's (`review.facets`), each the size of its filter.

A count reads every POI of the scope, some every candidate (at 100,000 POIs and 1,000,000
candidates: the header's pass about 80 ms, the damage and label counts some hundred ms), so
results are kept (per process) until the data stamp changes, and at most COUNTS_TTL seconds;
the label counts also follow the labels' own stamp (a curator's label changes them, nothing
else does). At most one aggregate query per filter group. The header's counts are part of
every page and every action's answer; the other groups' counts are read by the page when
they are kept, else fetched right after it (`filter_counts`), so a page never waits for them.
"""

from __future__ import annotations

import hashlib

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, QuerySet

from cities.models import PointOfInterest
from image_ranking.models import ImageTrainingData, PoiRanking, RankingRunItem
from image_ranking.review import facets
from image_ranking.review.facets import pois_in_lists

# A count's lifetime when nothing the data stamp sees has changed: an admin's edit or an
# import that adds a POI to a list without saving it shows within this many seconds.
COUNTS_TTL = 60


def data_stamp() -> tuple:
    """What changes whenever a POI's state can: the last run item made or finished (every
    ranking ends its POI's item), the last POI saved (an image stored, chosen or imported) and
    the last ranking recorded (a fallback's origin). One query; each part an index look-up."""
    return stamps(labels=False)[0]


def stamps(*, labels: bool = True) -> tuple[tuple, tuple]:
    """The data stamp and (with `labels`) the labels' own in the same query: how many labels
    there are, the last made, the last saved (a relabel, an undo)."""
    item = RankingRunItem._meta.db_table
    label = ImageTrainingData._meta.db_table
    parts = [
        ("MAX(id)", item),
        ("MAX(finished_at)", item),
        ("MAX(updated_at)", PointOfInterest._meta.db_table),
        ("MAX(ranked_at)", PoiRanking._meta.db_table),
    ]
    if labels:
        parts += [("COUNT(*)", label), ("MAX(id)", label), ("MAX(updated_at)", label)]
    sql = ", ".join(f"(SELECT {value} FROM {table})" for value, table in parts)  # noqa: S608 (table names only)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql}")
        row = tuple(str(value) for value in cursor.fetchone())
    return row[:4], row[4:]


def _key(name: str, parts: tuple) -> str:
    return f"ir-{name}-" + hashlib.sha256(repr(parts).encode()).hexdigest()


def _kept(name: str, parts: tuple, compute):
    """`compute()`, kept under `name` and `parts` for COUNTS_TTL seconds."""
    key = _key(name, parts)
    found = cache.get(key)
    if found is None:
        found = compute()
        cache.set(key, found, COUNTS_TTL)
    return found


def counts(
    city_id: int | None = None, list_id: int | None = None, stamp: tuple | None = None
) -> dict[str, int]:
    """The numbers at the top of the page: POIs in lists, each state, labels."""
    stamp = stamp or data_stamp()
    found = _kept("status", (city_id, list_id, stamp), lambda: status_counts(city_id, list_id))
    header = {"in_lists": found["in_lists"], **found["status"]}
    labels = ImageTrainingData.objects.all()
    if city_id or list_id:
        labels = labels.filter(poi__in=pois_in_lists(city_id, list_id).values("pk"))
    return {**header, "labelled": labels.count()}


def facet_counts(
    city_id: int | None = None,
    list_id: int | None = None,
    both: tuple | None = None,
    *,
    compute: bool = True,
    only: tuple[str, ...] = (),
) -> dict:
    """{group: {option: POIs}} for every filter of the grid within the city/list scope, and
    "in_lists". `both`: `stamps()`, when the caller has them. Without `compute`, only the
    groups kept already (the status group always: the header's); `only`: these groups (and
    the status group), e.g. ("origin", "flag")."""
    stamp, label_stamp = both or stamps()
    scope = (city_id, list_id, stamp)
    found = dict(_kept("status", scope, lambda: status_counts(city_id, list_id)))
    # (the groups it counts, what its count follows, how it counts)
    later = [
        (("origin", "score"), scope, lambda: origin_and_score_counts(city_id, list_id)),
        (("flag",), scope, lambda: flag_counts(city_id, list_id)),
        (("damage",), scope, lambda: damage_counts(city_id, list_id, found["in_lists"])),
        (("label",), (*scope, label_stamp), lambda: label_counts(city_id, list_id)),
    ]
    for groups, parts, count in later:
        if only and not set(groups) & set(only):
            continue
        name = "-".join(groups)
        kept = _kept(name, parts, count) if compute else cache.get(_key(name, parts))
        found.update(kept or {})
    return found


def _counted(pois, options: list[tuple[str, str, object]]) -> dict:
    """{group: {value: POIs matching its condition}} in one pass over `pois` (with
    "in_lists", all of them)."""
    row = pois.aggregate(
        in_lists=Count("pk"),
        **{f"n{i}": Count("pk", filter=where) for i, (_, _, where) in enumerate(options)},
    )
    found: dict = {"in_lists": row["in_lists"]}
    for i, (param, value, _) in enumerate(options):
        found.setdefault(param, {})[value] = row[f"n{i}"]
    return found


def _options(*params: str) -> list[tuple[str, str, object]]:
    return [
        (group.param, value, group.condition(value))
        for group in facets.GROUPS
        if group.param in params
        for value in group.options
    ]


def status_counts(city_id: int | None, list_id: int | None) -> dict:
    """POIs in lists and in each state (the header's): one pass over the POIs."""
    return _counted(pois_in_lists(city_id, list_id), _options("status"))


def origin_and_score_counts(city_id: int | None, list_id: int | None) -> dict:
    """POIs per image origin and per best score bin: one pass over the POIs."""
    found = _counted(pois_in_lists(city_id, list_id), _options("origin", "score"))
    return {"origin": found["origin"], "score": found["score"]}


def flag_counts(city_id: int | None, list_id: int | None) -> dict[str, dict[str, int]]:
    """Flagged POIs per reason (one query); every known reason, 0 included."""
    rows = (
        pois_in_lists(city_id, list_id)
        .filter(facets.state("flagged"))
        .values_list("ranking__validation__aggregate")
        .annotate(n=Count("pk"))
        .order_by()
    )
    found = dict.fromkeys(facets.FLAGS, 0)
    for reason, n in rows:
        found[reason or ""] = found.get(reason or "", 0) + n
    return {"flag": found}


def _sizes(querysets: dict[str, QuerySet]) -> dict[str, int]:
    """The size of each queryset, in one query (a sub-select each): each EXISTS filter is a
    semi-join the database plans as a whole, not a sub-plan run per POI as inside an
    aggregate's FILTER (PostgreSQL: 160 instead of 510 ms for the damage count at 100,000)."""
    parts, params = [], []
    for qs in querysets.values():
        sql, args = qs.order_by().values("pk").query.sql_with_params()
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) AS part)")  # noqa: S608 (Django's SQL)
        params += args
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        return dict(zip(querysets, cursor.fetchone(), strict=True))


def damage_counts(city_id: int | None, list_id: int | None, in_lists: int) -> dict:
    """POIs with a damaged copy among their candidates, and without (one query)."""
    pois = pois_in_lists(city_id, list_id)
    damaged = _sizes({"damaged": pois.filter(facets.damage("damaged"))})["damaged"]
    return {"damage": {"damaged": damaged, "none": in_lists - damaged}}


def label_counts(city_id: int | None, list_id: int | None) -> dict[str, dict[str, int]]:
    """POIs with a good label, a bad label, unlabelled candidates (one query)."""
    pois = pois_in_lists(city_id, list_id)
    return {"label": _sizes({value: pois.filter(facets.label(value)) for value in facets.LABELS})}
