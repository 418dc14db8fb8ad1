"""What the one Commons search request answers, as candidates: raster photos only, one per
file (sha1), in search rank order; and what its warnings say (a wiki without GeoData)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

# Raster photos only: TIFF, DjVu, XCF pass `filetype:bitmap` but are scans or layers, and the
# caller takes only the first frame of a GIF.
PHOTO_MIMES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
# API URLs found to lack GeoData, and warnings already logged, in this process.
_WITHOUT_GEODATA: set[str] = set()
_WARNINGS_SEEN: set[str] = set()


@dataclass(frozen=True)
class CommonsCandidate:
    """One file found for a POI; `search_rank` is Commons' own rank (1 = best, may have gaps
    where non-photos and duplicates were dropped)."""

    search_rank: int
    title: str
    description_url: str
    image_url: str
    thumb_url: str
    width: int
    height: int
    size: int
    mime: str
    sha1: str
    latitude: float | None
    longitude: float | None
    # Visible categories (hidden maintenance ones left out), without the "Category:" prefix.
    categories: tuple[str, ...] = ()


def candidates_from(query: str, payload: dict, limit: int) -> list[CommonsCandidate]:
    """The raster photos of the answer, once per file (sha1), best search rank first."""
    pages = (payload.get("query") or {}).get("pages") or []
    if isinstance(pages, dict):  # formatversion=1 from a proxy that rewrote the request
        pages = list(pages.values())
    found: list[CommonsCandidate] = []
    for page in pages:
        candidate = _candidate(page)
        if candidate is None:
            continue
        if candidate.mime not in PHOTO_MIMES:
            logger.info("Commons %r: skipped %s (%s)", query, candidate.title, candidate.mime)
            continue
        found.append(candidate)
    found.sort(key=lambda c: c.search_rank)
    unique: list[CommonsCandidate] = []
    seen: set[str] = set()
    for candidate in found:
        if candidate.sha1 in seen:
            logger.info("Commons %r: skipped duplicate %s", query, candidate.title)
            continue
        seen.add(candidate.sha1)
        unique.append(candidate)
    return unique[:limit]


def _candidate(page: Any) -> CommonsCandidate | None:
    """A candidate from one page of the answer, or None when it lacks what we need."""
    try:
        info = page["imageinfo"][0]
        coords = next(
            (c for c in page.get("coordinates") or [] if c.get("globe", "earth") == "earth"),
            None,
        )
        return CommonsCandidate(
            search_rank=int(page.get("index") or 10_000),
            title=str(page["title"]),
            description_url=str(info.get("descriptionurl", "")),
            image_url=str(info["url"]),
            thumb_url=str(info.get("thumburl") or info["url"]),
            width=int(info["width"]),
            height=int(info["height"]),
            size=int(info.get("size") or 0),
            mime=str(info["mime"]),
            sha1=str(info.get("sha1") or info["url"]),
            latitude=float(coords["lat"]) if coords else None,
            longitude=float(coords["lon"]) if coords else None,
            categories=tuple(
                str(c["title"]).removeprefix("Category:")
                for c in page.get("categories") or []
                if isinstance(c, dict) and c.get("title")
            ),
        )
    except (KeyError, IndexError, TypeError, ValueError):
        logger.warning("Commons answer: unusable page %.200r", page)
        return None


def file_page_title(title: str) -> str:
    """A File: page title as Commons names it: the namespace added, underscores as spaces."""
    title = title.replace("_", " ")
    return title if title.startswith("File:") else f"File:{title}"


def titles_not_found(titles: list[str], found: list[CommonsCandidate]) -> list[str]:
    """The `titles` asked for with `titles=` that gave no candidate: pages that do not exist,
    or files that are no raster photo."""
    got = {c.title for c in found}
    return [file_page_title(t) for t in titles if file_page_title(t) not in got]


def note_warnings(api_url: str, warnings: Any) -> None:
    """Each distinct warning is logged once per process (not once per POI). A wiki
    without GeoData does not know prop=coordinates: later requests leave it out, and the
    distance check has no coordinates (the dashboard says so)."""
    text = json.dumps(warnings, sort_keys=True, ensure_ascii=False)
    if "coordinates" in text and "Unrecognized value" in text:
        if api_url not in _WITHOUT_GEODATA:
            _WITHOUT_GEODATA.add(api_url)
            logger.warning(
                "%s has no GeoData (prop=coordinates unknown): the distance check is off; "
                "searching without coordinates from now on",
                api_url,
            )
        return
    if text not in _WARNINGS_SEEN:
        _WARNINGS_SEEN.add(text)
        logger.warning("Commons API warnings (logged once per process): %s", text[:500])


def has_geodata(api_url: str | None = None) -> bool:
    """False once the API answered that it does not know prop=coordinates (no GeoData)."""
    return (api_url or settings.WIKIMEDIA_API_URL) not in _WITHOUT_GEODATA
