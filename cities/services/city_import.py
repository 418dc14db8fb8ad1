"""Import of the original project's city exports (`import_city_export`, Prefect `import_city`).

The whole file is validated (`export_validation`) before anything is written, and the writes
run in one transaction, so a malformed or truncated export leaves the database exactly as it was.
Re-importing is idempotent: POIs are matched by their export id within the city, districts by
name and lists by title, and a row is saved only when one of its fields really changed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cities.models import City, District, PoiList, PointOfInterest
from cities.services.export_validation import (
    POI_TEXT_FIELDS,
    CityExportError,
    media_image_name,
    validate_export,
)

__all__ = [
    "CityExportError",
    "ImportSummary",
    "import_city_export",
    "import_city_export_file",
    "load_export",
    "validate_export",
]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]


@dataclass
class ImportSummary:
    city: str
    districts: int = 0
    pois: int = 0
    lists: int = 0
    memberships: int = 0
    created: dict[str, int] = field(default_factory=lambda: {"district": 0, "poi": 0, "list": 0})
    updated: dict[str, int] = field(default_factory=lambda: {"district": 0, "poi": 0, "list": 0})
    images_linked: int = 0
    images_not_found: int = 0

    @property
    def changed(self) -> bool:
        return any(self.created.values()) or any(self.updated.values())

    def as_text(self) -> str:
        return (
            f"{self.city}: {self.districts} districts, {self.pois} POIs, {self.lists} lists, "
            f"{self.memberships} list memberships; created {self.created}, "
            f"updated {self.updated}; images linked {self.images_linked}, "
            f"image files not found {self.images_not_found}"
        )


# --- Reading and validation -----------------------------------------------------------------


def load_export(path: str | Path) -> dict[str, Any]:
    """Read and validate an export file; raises CityExportError naming the problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CityExportError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise CityExportError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise CityExportError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            " (is the file truncated?)"
        ) from exc
    validate_export(data, source=str(path))
    return data


# --- Writing --------------------------------------------------------------------------------


def _assign(instance: Any, values: dict[str, Any]) -> list[str]:
    """Set the values that differ; returns the names of the fields that changed."""
    changed = []
    for key, value in values.items():
        if getattr(instance, key) != value:
            setattr(instance, key, value)
            changed.append(key)
    return changed


def _link_image(poi: PointOfInterest, name: str) -> bool:
    """Link the export's image only while the POI still has none in the database."""
    linked = (
        PointOfInterest.objects.filter(pk=poi.pk)
        .filter(Q(image_file="") | Q(image_file__isnull=True))
        .update(image_file=name, updated_at=timezone.now())
    )
    if linked:
        poi.image_file.name = name
    return bool(linked)


def _import_districts(city: City, rows: list[dict], summary: ImportSummary) -> dict[str, District]:
    existing = {d.name: d for d in city.districts.all()}
    created: set[str] = set()
    for row in rows:
        if row["name"] not in existing:
            existing[row["name"]] = District.objects.create(city=city, name=row["name"])
            created.add(row["name"])
    summary.created["district"] += len(created)
    for row in rows:
        district = existing[row["name"]]
        parent = existing.get(row.get("parent_district")) if row.get("parent_district") else None
        if district.parent_district_id != (parent.pk if parent else None):
            district.parent_district = parent
            district.save(update_fields=["parent_district", "updated_at"])
            if row["name"] not in created:
                summary.updated["district"] += 1
    summary.districts = len(rows)
    return existing


def _poi_values(row: dict, districts: dict[str, District]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": row["name"],
        "category": row["category"],
        "latitude": row.get("latitude"),
        "longitude": row.get("longitude"),
        "rank": row.get("rank", 0),
        "osm_id": row.get("osm_id"),
        "district": districts.get(row["district"]) if row.get("district") else None,
    }
    for key in POI_TEXT_FIELDS:
        values[key] = row.get(key) or ""
    return values


def _unique_pois(data: dict[str, Any]) -> list[dict]:
    """All POIs of the export: the city's list, then any that only a list mentions."""
    seen: dict[int, dict] = {}
    for row in data["points_of_interest"]:
        seen.setdefault(row["id"], row)
    for poi_list in data["poi_lists"]:
        for row in poi_list["pois"]:
            seen.setdefault(row["id"], row)
    return list(seen.values())


def _import_pois(
    city: City,
    rows: list[dict],
    districts: dict[str, District],
    summary: ImportSummary,
    progress: ProgressCallback | None,
) -> dict[int, PointOfInterest]:
    existing = {p.source_id: p for p in city.points_of_interest.select_related("district")}
    media_root = Path(settings.MEDIA_ROOT)
    by_source: dict[int, PointOfInterest] = {}
    for done, row in enumerate(rows, start=1):
        values = _poi_values(row, districts)
        image_name = media_image_name(row.get("image_url"))
        poi = existing.get(row["id"])
        created = poi is None
        if created:
            poi = PointOfInterest(city=city, source_id=row["id"])
        changed = _assign(poi, values)
        # The export's image is linked only when its file is present: a path to a missing
        # file would show curators a broken image. An image already set is never cleared.
        image_file = image_name if image_name and (media_root / image_name).is_file() else None
        if image_name and image_file is None and not poi.image_file:
            summary.images_not_found += 1
        if created:
            if image_file:
                poi.image_file.name = image_file
                summary.images_linked += 1
            poi.save()
            summary.created["poi"] += 1
        else:
            # Only the fields the export owns, so a ranking job's new image, stored meanwhile,
            # is never overwritten by this process's stale copy of the row.
            if changed:
                poi.save(update_fields=[*changed, "updated_at"])
                summary.updated["poi"] += 1
            if image_file and not poi.image_file and _link_image(poi, image_file):
                summary.images_linked += 1
                if not changed:
                    summary.updated["poi"] += 1
        by_source[row["id"]] = poi
        if progress:
            progress(done, len(rows))
    summary.pois = len(rows)
    return by_source


def _import_lists(
    city: City, rows: list[dict], pois: dict[int, PointOfInterest], summary: ImportSummary
) -> None:
    existing = {pl.title: pl for pl in city.poi_lists.prefetch_related("pois")}
    for row in rows:
        poi_list = existing.get(row["title"])
        if poi_list is None:
            poi_list = PoiList.objects.create(city=city, title=row["title"])
            summary.created["list"] += 1
            current: set[int] = set()
        else:
            current = {p.pk for p in poi_list.pois.all()}
        wanted = {pois[p["id"]].pk for p in row["pois"]}
        if wanted != current:
            poi_list.pois.set(wanted)
            if row["title"] in existing:
                summary.updated["list"] += 1
        summary.memberships += len(wanted)
    summary.lists = len(rows)


def import_city_export(
    data: dict[str, Any], progress: ProgressCallback | None = None
) -> ImportSummary:
    """Create or update one city from a validated export, all in one transaction."""
    validate_export(data)
    city_row = data["city"]
    summary = ImportSummary(city=city_row["name"])
    with transaction.atomic():
        city, _ = City.objects.get_or_create(name=city_row["name"])
        city_changed = _assign(
            city,
            {
                "country": city_row.get("country") or "Unknown",
                "latitude": city_row.get("latitude"),
                "longitude": city_row.get("longitude"),
                "about": city_row.get("about") or "",
                "wikivoyage_url": city_row.get("wikivoyage_url") or "",
            },
        )
        if city_changed:
            city.save()
        districts = _import_districts(city, data["districts"], summary)
        pois = _import_pois(city, _unique_pois(data), districts, summary, progress)
        _import_lists(city, data["poi_lists"], pois, summary)
    logger.info("Imported city export: %s", summary.as_text())
    return summary


def import_city_export_file(
    path: str | Path, progress: ProgressCallback | None = None
) -> ImportSummary:
    return import_city_export(load_export(path), progress=progress)
