"""Validation of a city export before anything is written.

Why: an export is untrusted JSON. Anything the database would refuse or silently mangle (a
number too big for its column, text longer than its column on PostgreSQL, NUL characters, NaN,
`true` where an id belongs, an object stored as its repr, a district that is its own ancestor)
must be refused up front with a message naming the field, so that nothing is half-written.
Limits are read from the model fields, so they follow the schema.
"""

from __future__ import annotations

import math
from typing import Any

from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations

from cities.models import City, District, PoiList, PointOfInterest

CATEGORIES = {choice.value for choice in PointOfInterest.Category}
POI_TEXT_FIELDS = ("sub_category", "description", "address", "phone", "website", "hours")
CITY_TEXT_FIELDS = ("country", "about", "wikivoyage_url")
LATITUDE, LONGITUDE = (-90.0, 90.0), (-180.0, 180.0)


class CityExportError(ValueError):
    """The export file cannot be imported; the message says what and where."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise CityExportError(message)


def _max_length(model: type[models.Model], name: str) -> int | None:
    return model._meta.get_field(name).max_length


def _int_range(model: type[models.Model], name: str) -> tuple[int, int]:
    """The portable range of an integer column (the same on SQLite and PostgreSQL)."""
    internal = model._meta.get_field(name).get_internal_type()
    return BaseDatabaseOperations.integer_field_ranges[internal]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_text(
    value: Any, where: str, key: str, model: type[models.Model], field: str, *, required: bool
) -> None:
    """Text (or null unless `required`), no NUL, within the column's max_length."""
    if value is None and not required:
        return
    kind = "text" if required else "text or null"
    _require(isinstance(value, str), f"{where}: '{key}' must be {kind}, got {_shown(value)}")
    _require(not required or value.strip() != "", f"{where}: '{key}' must be text, not empty")
    _require("\x00" not in value, f"{where}: '{key}' contains a NUL character")
    limit = _max_length(model, field)
    _require(
        limit is None or len(value) <= limit,
        f"{where}: '{key}' has {len(value)} characters, more than the {limit} allowed",
    )


def check_coordinate(value: Any, where: str, key: str, bounds: tuple[float, float]) -> None:
    low, high = bounds
    ok = value is None or (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )
    _require(
        ok,
        f"{where}: '{key}' must be a number between {low:g} and {high:g} (or null),"
        f" got {_shown(value)}",
    )


def check_integer(value: Any, where: str, key: str, model: type[models.Model], field: str) -> None:
    low, high = _int_range(model, field)
    ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    _require(ok, f"{where}: '{key}' must be an integer from {low} to {high}, got {_shown(value)}")


def media_image_name(image_url: str | None) -> str | None:
    """The storage name of an exported image URL ('<City>/media/cities/images/...')."""
    if not image_url:
        return None
    marker = "media/"
    index = image_url.find(marker)
    name = image_url[index + len(marker) :] if index >= 0 else image_url
    name = name.lstrip("/")
    if ".." in name.split("/") or not name.startswith("cities/images/"):
        return None
    return name


def _validate_poi(poi: Any, where: str, district_names: set[str]) -> None:
    _require(isinstance(poi, dict), f"{where}: must be an object")
    check_integer(poi.get("id"), where, "id", PointOfInterest, "source_id")
    check_text(poi.get("name"), where, "name", PointOfInterest, "name", required=True)
    where = f"{where} ({poi['name']!r})"
    category = poi.get("category")
    _require(
        isinstance(category, str) and category in CATEGORIES,
        f"{where}: 'category' must be one of {sorted(CATEGORIES)}, got {_shown(category)}",
    )
    check_coordinate(poi.get("latitude"), where, "latitude", LATITUDE)
    check_coordinate(poi.get("longitude"), where, "longitude", LONGITUDE)
    for key in (*POI_TEXT_FIELDS, "osm_id"):
        check_text(poi.get(key), where, key, PointOfInterest, key, required=False)
    image_url = poi.get("image_url")
    _require(  # not stored itself: only the file name it points to is (checked below)
        image_url is None or isinstance(image_url, str),
        f"{where}: 'image_url' must be text or null, got {_shown(image_url)}",
    )
    name = media_image_name(image_url)
    limit = _max_length(PointOfInterest, "image_file")
    _require(
        name is None or limit is None or len(name) <= limit,
        f"{where}: 'image_url' names a file path of {len(name or '')} characters,"
        f" more than the {limit} allowed",
    )
    check_integer(poi.get("rank", 0), where, "rank", PointOfInterest, "rank")
    district = poi.get("district")
    _require(
        district is None or (isinstance(district, str) and district in district_names),
        f"{where}: district {_shown(district)} is not in 'districts'",
    )


def _validate_city(city: Any, source: str) -> None:
    _require(isinstance(city, dict), f"{source}: 'city' must be an object")
    check_text(city.get("name"), source, "city.name", City, "name", required=True)
    where = f"{source}: city ({city['name']!r})"
    check_coordinate(city.get("latitude"), where, "latitude", LATITUDE)
    check_coordinate(city.get("longitude"), where, "longitude", LONGITUDE)
    for key in CITY_TEXT_FIELDS:
        check_text(city.get(key), where, key, City, key, required=False)


def _validate_districts(districts: Any, source: str) -> set[str]:
    _require(isinstance(districts, list), f"{source}: 'districts' must be a list")
    parents: dict[str, Any] = {}
    for i, district in enumerate(districts):
        where = f"{source}: districts[{i}]"
        _require(isinstance(district, dict), f"{where}: must be an object")
        check_text(district.get("name"), where, "name", District, "name", required=True)
        parents[district["name"]] = district.get("parent_district")
    for i, district in enumerate(districts):
        parent = district.get("parent_district")
        _require(
            parent is None or (isinstance(parent, str) and parent in parents),
            f"{source}: districts[{i}] ({district['name']!r}): parent {_shown(parent)}"
            " is not a district",
        )
    for i, district in enumerate(districts):
        chain = [district["name"]]
        while (parent := parents.get(chain[-1])) is not None:
            if parent in chain:
                cycle = " -> ".join(map(repr, [*chain[chain.index(parent) :], parent]))
                raise CityExportError(
                    f"{source}: districts[{i}] ({district['name']!r}): 'parent_district'"
                    f" makes a cycle: {cycle}"
                )
            chain.append(parent)
    return set(parents)


def validate_export(data: Any, source: str = "export") -> None:
    """Raise CityExportError naming the first problem; return None when `data` is importable."""
    _require(isinstance(data, dict), f"{source}: top level must be an object")
    for key in ("city", "districts", "points_of_interest", "poi_lists"):
        _require(key in data, f"{source}: missing top-level key '{key}'")
    _validate_city(data["city"], source)
    names = _validate_districts(data["districts"], source)
    _require(
        isinstance(data["points_of_interest"], list),
        f"{source}: 'points_of_interest' must be a list",
    )
    for i, poi in enumerate(data["points_of_interest"]):
        _validate_poi(poi, f"{source}: points_of_interest[{i}]", names)
    _require(isinstance(data["poi_lists"], list), f"{source}: 'poi_lists' must be a list")
    titles: set[str] = set()
    for i, poi_list in enumerate(data["poi_lists"]):
        where = f"{source}: poi_lists[{i}]"
        _require(isinstance(poi_list, dict), f"{where}: must be an object")
        title = poi_list.get("title")
        check_text(title, where, "title", PoiList, "title", required=True)
        _require(title not in titles, f"{where}: title {title!r} appears twice")
        titles.add(title)
        _require(isinstance(poi_list.get("pois"), list), f"{where}: 'pois' must be a list")
        for j, poi in enumerate(poi_list["pois"]):
            _validate_poi(poi, f"{where}.pois[{j}]", names)
