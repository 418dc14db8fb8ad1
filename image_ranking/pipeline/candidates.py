"""A POI's candidates: the most relevant hits of its one search, the distance guard, the one
scoring batch of their thumbnails, and their rows for the dashboard and training data.

A bad thumbnail (or one Commons could not render) only marks its own candidate (`error`); the
batch goes on with the others.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from PIL import Image

from cities.models import PointOfInterest
from image_ranking.commons.answers import CommonsCandidate, has_geodata
from image_ranking.commons.downloads import DownloadError, fetch_image_bytes
from image_ranking.commons.renditions import rendition_or_original
from image_ranking.models import Candidate, PoiRanking
from image_ranking.pipeline import relevance, storage
from image_ranking.scoring import Scorer, quality, scene_features
from image_ranking.scoring.imaging import ImageRejected, open_image, to_rgb

logger = logging.getLogger(__name__)

MAX_CANDIDATES = 10


@dataclass
class Scored:
    """One candidate on its way from the search answer to a Candidate row."""

    source: CommonsCandidate
    distance_km: float | None = None
    eligible: bool = True
    ineligible_reason: str = ""
    score: float | None = None
    score_std: float | None = None
    rank_score: float | None = None
    error: str = ""
    transient: bool = False  # its thumbnail failed for a passing reason: try again later
    evidence: relevance.Evidence = field(default_factory=relevance.Evidence)
    # Scene features of the scored rendition (`scoring.scene_features`), for the same-scene checks
    # of this ranking; kept with the stored photo only (PoiRanking.image_scene), not per candidate.
    scene: bytes = b""
    damage: str = ""  # "dark copy of File:X.jpg": why it ranks below its better copy
    row: Candidate | None = None


def most_relevant(
    poi: PointOfInterest, found: list[CommonsCandidate], *, chosen_by_curator: bool = False
) -> list[Scored]:
    """The MAX_CANDIDATES hits most likely to show this POI (naming it first, then naming
    nothing, then naming another POI of the city), in search order; one naming another POI
    cannot win. Files a curator named are this POI's by their word."""
    place, others = relevance.city_places(poi)
    items = [
        Scored(
            source=c,
            evidence=relevance.Evidence(tier=relevance.NAMES_THIS, chosen=True)
            if chosen_by_curator
            else relevance.assess(place, c.title, c.categories, others),
        )
        for c in found
    ]
    keep = sorted(items, key=lambda s: (-s.evidence.tier, s.source.search_rank))
    keep = sorted(keep[:MAX_CANDIDATES], key=lambda s: s.source.search_rank)
    for item in keep:
        if item.evidence.tier == relevance.NAMES_OTHER:
            item.eligible = False
            item.ineligible_reason = item.evidence.summary()[:200]
    return keep


def apply_distance_guard(poi: PointOfInterest, items: list[Scored]) -> str:
    """A candidate photographed far from the POI shows another place with the same name.
    Returns how the distance could be checked (PoiRanking.DistanceCheck), for the card."""
    checks = PoiRanking.DistanceCheck
    limit = float(settings.IMAGE_RANKING_MAX_DISTANCE_KM)
    if poi.latitude is None or poi.longitude is None:
        return checks.NO_POI_COORDINATES
    if not has_geodata():
        return checks.NO_GEODATA
    if items and all(item.source.latitude is None for item in items):
        return checks.NO_CANDIDATE_COORDINATES
    for item in items:
        lat, lon = item.source.latitude, item.source.longitude
        if lat is None or lon is None:
            continue
        item.distance_km = haversine_km(poi.latitude, poi.longitude, lat, lon)
        if limit > 0 and item.distance_km > limit:
            item.eligible = False
            item.ineligible_reason = (
                f"taken {item.distance_km:.1f} km from the POI (limit {limit:g} km)"
            )
    return checks.CHECKED


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


def scoring_url(candidate: Any) -> str:
    """The rendition that is scored: IMAGE_RANKING_THUMB_WIDTH wide, or the original when it
    is not wider; ValueError when Commons could not render one."""
    return rendition_or_original(candidate, int(settings.IMAGE_RANKING_THUMB_WIDTH))


def score_batch(items: list[Scored], scorer: Scorer) -> None:
    """Fetch every thumbnail into memory, then score all decodable ones in ONE batch."""
    images, owners = [], []
    for item in items:
        image = _thumbnail(item)
        if image is not None:
            images.append(image)
            owners.append(item)
    if not images:
        return
    results = scorer.score(images)
    # Only a damaged copy of another candidate (same scene: dark, washed-out, low-contrast,
    # blurred, or an enlarged crop) is pushed down, below the better copy; different photos
    # of the place are left to the model, since their exposure and detail say nothing.
    features = [scene_features.features(image) for image in images]  # once each, for every check
    widths = [item.source.width for item in owners]
    damages = quality.assess_copies(images, features=features, file_widths=widths)
    ranked = quality.ranking_scores([float(r.score) for r in results], damages)
    for item, feats, result, damage, rank in zip(
        owners, features, results, damages, ranked, strict=True
    ):
        item.scene = feats.to_bytes()
        item.score = float(result.score)
        item.score_std = None if result.std is None else float(result.std)
        item.rank_score = rank
        if damage is not None:
            item.damage = damage.reason(owners[damage.copy_of].source.title)


def _thumbnail(item: Scored) -> Image.Image | None:
    """The candidate's scoring rendition, decoded upright in RGB; None (and `item.error`)
    when it cannot be had. A lack of time for the whole POI is raised, not settled here."""
    width = int(settings.IMAGE_RANKING_THUMB_WIDTH)
    try:
        url = scoring_url(item.source)
    except ValueError as exc:  # no standard rendition (Commons sent `thumberror`)
        item.error = f"no thumbnail to score: {exc}"[:500]
        logger.info("Candidate %r: %s", item.source.title, item.error)
        return None
    try:
        data = fetch_image_bytes(url, max_bytes=int(settings.IMAGE_RANKING_THUMB_MAX_BYTES))
        image = open_image(data, max_pixels=storage.max_pixels(), at_most=width)
        return _within(to_rgb(storage.upright(image, data)), 2 * width)
    except DownloadError as exc:
        item.error = f"thumbnail download failed: {exc}"[:500]
        item.transient = exc.transient
    except ImageRejected as exc:
        item.error = f"thumbnail rejected: {exc}"[:500]
    except Exception as exc:
        item.error = f"thumbnail unreadable: {type(exc).__name__}: {exc}"[:500]
    logger.info("Candidate %r: %s", item.source.title, item.error)
    return None


def _within(image: Image.Image, side: int) -> Image.Image:
    """A thumbnail far larger than the rendition asked for (a hostile but legal answer) is
    shrunk before the batch holds it, so ten of them cannot take a worker's memory."""
    if max(image.size) > side:
        image.thumbnail((side, side), Image.Resampling.BOX)
    return image


def save_candidates(poi: PointOfInterest, items: list[Scored], model: str) -> None:
    """Replace the POI's candidates with this search's (the dashboard shows the latest). The
    file the POI's current image came from is its winner (`PoiRanking.image_sha1`), so a
    re-rank that keeps the image still knows which candidate it is."""
    stored = PoiRanking.objects.filter(poi=poi).values_list("image_sha1", flat=True).first() or ""
    with transaction.atomic():
        Candidate.objects.filter(poi=poi).delete()
        for item in items:
            c = item.source
            item.row = Candidate.objects.create(
                poi=poi,
                search_rank=c.search_rank,
                title=c.title[:500],
                description_url=c.description_url or "",
                image_url=c.image_url,
                thumb_url=c.thumb_url or "",
                width=c.width,
                height=c.height,
                size=c.size,
                mime=c.mime or "",
                sha1=c.sha1 or "",
                latitude=c.latitude,
                longitude=c.longitude,
                distance_km=item.distance_km,
                eligible=item.eligible,
                ineligible_reason=item.ineligible_reason[:200],
                score=item.score,
                score_std=item.score_std,
                rank_score=item.rank_score,
                model_name=model if item.score is not None else "",
                error=item.error[:500],
                categories=list(c.categories),
                relevance=item.evidence.summary()[:300],
                damage=item.damage[:200],
                is_winner=bool(stored) and c.sha1 == stored,
            )
