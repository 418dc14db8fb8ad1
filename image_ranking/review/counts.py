"""The dashboard's counts within the city/list scope: the header's (POIs in lists, each state,
labels) and every filter option's (`review.facets`), each the size of its filter.

Each count reads every POI of the scope (about 80 ms at 100,000), so the results are kept
(per process) until the data stamp changes, and at most COUNTS_TTL seconds. At most one
aggregate query per filter group: status, origin and best score share one pass over the
POIs; flag reasons, damage and labels one query each. The label counts also follow the
labels' own stamp (a curator's label changes them; nothing else does). The header's number
of labels is counted each time (one small query).
"""

from __future__ import annotations

import hashlib

from django.core.cache import cache
from django.db import connection
from django.db.models import Count

from cities.models import PointOfInterest
from image_ranking.models import ImageTrainingData, PoiRanking, RankingRunItem
from image_ranking.review import facets
from image_ranking.review.facets import pois_in_lists

# A count's lifetime when nothing the data stamp sees has changed: an admin's edit or an
# import that adds a POI to a list without saving it shows within this many seconds.
COUNTS_TTL = 60
# The groups counted in the one pass over the POIs (the header's states among them).
ONE_PASS = ("status", "origin", "score")


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


def _kept(name: str, parts: tuple, compute):
    """`compute()`, kept under `name` and `parts` for COUNTS_TTL seconds."""
    key = f"ir-{name}-" + hashlib.sha256(repr(parts).encode()).hexdigest()
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
    found = _kept("pass", (city_id, list_id, stamp), lambda: poi_pass(city_id, list_id))
    header = {"in_lists": found["in_lists"], **found["status"]}
    labels = ImageTrainingData.objects.all()
    if city_id or list_id:
        labels = labels.filter(poi__in=pois_in_lists(city_id, list_id).values("pk"))
    return {**header, "labelled": labels.count()}


def facet_counts(
    city_id: int | None = None, list_id: int | None = None, both: tuple | None = None
) -> dict[str, dict[str, int]]:
    """{group: {option: POIs}} for every filter of the grid within the city/list scope, and
    "in_lists". `both`: `stamps()`, when the caller has them."""
    stamp, labels = both or stamps()
    scope = (city_id, list_id, stamp)
    found = dict(_kept("pass", scope, lambda: poi_pass(city_id, list_id)))
    found.update(_kept("flags", scope, lambda: flag_counts(city_id, list_id)))
    found.update(_kept("damage", scope, lambda: damage_counts(city_id, list_id)))
    found.update(_kept("labels", (*scope, labels), lambda: label_counts(city_id, list_id)))
    return found


def poi_pass(city_id: int | None, list_id: int | None) -> dict:
    """POIs in lists, and per option of status, image origin and best score: one pass."""
    options = [
        (group.param, value, group.condition(value))
        for group in facets.GROUPS
        if group.param in ONE_PASS
        for value in group.options
    ]
    row = pois_in_lists(city_id, list_id).aggregate(
        in_lists=Count("pk"),
        **{f"n{i}": Count("pk", filter=where) for i, (_, _, where) in enumerate(options)},
    )
    found: dict = {"in_lists": row["in_lists"], **{param: {} for param in ONE_PASS}}
    for i, (param, value, _) in enumerate(options):
        found[param][value] = row[f"n{i}"]
    return found


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


def damage_counts(city_id: int | None, list_id: int | None) -> dict[str, dict[str, int]]:
    """POIs with a damaged copy among their candidates, and without (one query)."""
    row = pois_in_lists(city_id, list_id).aggregate(
        all=Count("pk"), damaged=Count("pk", filter=facets.damage("damaged"))
    )
    return {"damage": {"damaged": row["damaged"], "none": row["all"] - row["damaged"]}}


def label_counts(city_id: int | None, list_id: int | None) -> dict[str, dict[str, int]]:
    """POIs with a good label, a bad label, unlabelled candidates (one query)."""
    row = pois_in_lists(city_id, list_id).aggregate(
        **{value: Count("pk", filter=facets.label(value)) for value in facets.LABELS}
    )
    return {"label": row}
