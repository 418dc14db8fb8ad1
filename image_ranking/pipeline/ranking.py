"""Rank one POI: the single function every entry point uses (Django-Q task, command, flow).

claim -> ONE Commons search -> relevance guard -> thumbnails in memory -> one scoring batch
-> candidates saved -> best eligible score >= threshold stored (unless an existing image is
kept) or the POI flagged -> PoiRanking and the run's item recorded -> claim released.

A bad thumbnail (or one Commons could not render) only marks its own candidate
(`Candidate.error`); a Commons fault flags the POI as `fetch_failed`, an unexpected error as
`internal_error`; every POI that ends without a real image has exactly one flag; nothing here
stops a batch. The work runs within a time budget below the task timeout.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cities.models import PointOfInterest
from image_ranking.commons.budget import BudgetExhausted, time_budget
from image_ranking.models import Candidate, PoiRanking
from image_ranking.pipeline import flags, relevance, shared_photos
from image_ranking.pipeline.claims import claim_poi, release_claim
from image_ranking.review.calibration import current_threshold
from image_ranking.runs import service as runs
from image_ranking.scoring import quality, sharpness

logger = logging.getLogger(__name__)

MAX_CANDIDATES = 10


class Outcome(StrEnum):
    UPDATED = "updated"  # a winner was stored as the POI's image
    RANKED = "ranked"  # candidates stored, the existing image kept
    FLAGGED = "flagged"  # nothing good enough: flagged (maybe a fallback image)
    FAILED = "failed"  # Commons or the winner's download failed, or an unexpected error
    SKIPPED = "skipped"  # another job holds the POI


@dataclass
class _Scored:
    """One candidate on its way from the search answer to a Candidate row."""

    source: Any  # commons.CommonsCandidate
    distance_km: float | None = None
    eligible: bool = True
    ineligible_reason: str = ""
    score: float | None = None
    score_std: float | None = None
    rank_score: float | None = None
    error: str = ""
    evidence: relevance.Evidence = field(default_factory=relevance.Evidence)
    dhash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def rank_poi(
    poi_id: int,
    *,
    threshold: float | None = None,
    replace_existing: bool = False,
    run_id: int | None = None,
    model_name: str | None = None,
) -> Outcome:
    """Rank one POI's Commons candidates and store the winner or flag the POI, within the
    POI's time budget; its run item is recorded whatever happens."""
    if run_id is not None and not runs.start_item(run_id, poi_id):
        logger.info(
            "POI %s: its item in run %s has ended already; not ranked again", poi_id, run_id
        )
        return Outcome.SKIPPED
    poi = PointOfInterest.objects.select_related("city").filter(pk=poi_id).first()
    if poi is None:
        logger.warning("POI %s no longer exists", poi_id)
        if run_id is not None:
            runs.record_item(run_id, poi_id, Outcome.FAILED, "the POI no longer exists")
        return Outcome.FAILED
    ranking, token = claim_poi(poi, run_id)
    if token is None:
        holder_run = ranking.claimed_by.split(":", 1)[0]
        logger.info("POI %s is being ranked by job %s; skipped", poi.pk, ranking.claimed_by)
        if run_id is not None and holder_run != str(run_id):
            holder = f"run {holder_run}" if holder_run != "0" else "a curator's action"
            runs.record_item(run_id, poi.pk, Outcome.SKIPPED, f"being ranked by {holder}")
        return Outcome.SKIPPED
    try:
        # No threshold given (command line, Prefect): the one curators adopted, else the setting.
        limit = threshold if threshold is not None else current_threshold(model_name)
        try:
            with time_budget(poi_budget_seconds()):
                outcome, fields = _rank_claimed(poi, ranking, limit, replace_existing, model_name)
        except BudgetExhausted as exc:
            has_real_image = bool(poi.image_file) and not ranking.uses_fallback
            reason = f"time budget ran out: {exc}"
            outcome = Outcome.FAILED
            fields = _fetch_failed(poi, ranking, reason, has_real_image)
        _record(ranking, run_id, outcome, {"threshold": limit, **fields})
        return outcome
    finally:
        release_claim(ranking, token)


def poi_budget_seconds() -> float:
    """The time one POI may take: the task timeout less a margin to record the outcome."""
    timeout = float(settings.Q_CLUSTER.get("timeout", 300))
    return max(1.0, timeout - min(30.0, max(2.0, timeout / 10)))


def record_unexpected_failure(poi_id: int, run_id: int | None, reason: str) -> None:
    """The task wrapper's last word when rank_poi raised (or timed out): the POI is FAILED
    with the reason and flagged when it has no real image, and its item recorded."""
    _fail_poi(poi_id, reason)
    if run_id is not None:
        runs.record_item(run_id, poi_id, Outcome.FAILED, reason)


def record_lost(poi_id: int, run_id: int, reason: str) -> None:
    """The sweep found the POI's task lost (its item is already recorded as failed)."""
    _fail_poi(poi_id, f"run {run_id}: {reason}")


def _fail_poi(poi_id: int, reason: str) -> None:
    poi = PointOfInterest.objects.select_related("city").filter(pk=poi_id).first()
    if poi is None:
        return
    ranking, _ = PoiRanking.objects.get_or_create(poi=poi)
    fields: dict[str, Any] = {"reason": reason[:500]}
    if not (poi.image_file and not ranking.uses_fallback):
        fields["validation"] = flags.set_flag(poi, ranking, flags.INTERNAL_ERROR, reason)
    PoiRanking.objects.filter(pk=ranking.pk).update(
        status=PoiRanking.Status.FAILED, ranked_at=timezone.now(), **fields
    )


def _record(
    ranking: PoiRanking, run_id: int | None, outcome: Outcome, fields: dict[str, Any]
) -> None:
    """Save the POI's state, then its run item (insert-or-update: a retry does not recount)."""
    with transaction.atomic():
        row = PoiRanking.objects.select_for_update().get(pk=ranking.pk)
        row.status = str(outcome)
        row.ranked_at = timezone.now()
        for name, value in fields.items():
            setattr(row, name, value)
        if run_id is not None:
            row.run_id = run_id
        row.save()
    ranking.refresh_from_db()
    if run_id is not None:
        runs.record_item(run_id, ranking.poi_id, outcome, ranking.reason)


# --- the work ---------------------------------------------------------------------------------


def _rank_claimed(
    poi: PointOfInterest,
    ranking: PoiRanking,
    threshold: float,
    replace_existing: bool,
    model_name: str | None,
) -> tuple[Outcome, dict[str, Any]]:
    from image_ranking.commons.client import CommonsError, get_commons_client, titles_not_found
    from image_ranking.scoring import get_scorer

    scorer = get_scorer(model_name)  # ScoringModelMissing propagates: a deployment fault
    # Flags are for POIs that lack a photo; one with a real image is never flagged.
    has_real_image = bool(poi.image_file) and not ranking.uses_fallback
    searched = search_description(ranking, poi)
    try:
        client = get_commons_client()
        if ranking.file_titles:
            titles = list(ranking.file_titles)[:MAX_CANDIDATES]
            found = client.candidates_for_titles(titles)
            if missing := titles_not_found(titles, found):  # said on the card, not dropped
                searched = f"{searched}; not on Commons or no photo: {', '.join(missing)}"[:500]
        else:
            depth = max(MAX_CANDIDATES, int(settings.IMAGE_RANKING_SEARCH_DEPTH))
            found = client.search_candidates(ranking.search_query or poi.name, limit=depth)
    except CommonsError as exc:
        reason = f"Commons search failed: {exc}"
        fields = _fetch_failed(poi, ranking, reason, has_real_image)
        return Outcome.FAILED, {**fields, "searched_for": searched}

    items = _most_relevant(poi, found, chosen_by_curator=bool(ranking.file_titles))
    distance_check = _apply_relevance_guard(poi, items)
    _score_batch(items, scorer)
    rows = _save_candidates(poi, items, scorer.name)
    scored = [s for s in items if s.score is not None]
    # The best score the winner choice could take: an ineligible candidate (too far, another
    # POI's photo) never wins, so its score is no "best" beside the threshold.
    best_score = max(
        (s.rank_score for s in scored if s.eligible and s.rank_score is not None), default=None
    )
    common = {
        "model_name": scorer.name,
        "best_score": best_score,
        "distance_check": distance_check,
        "searched_for": searched,
    }

    unfetched = [s for s in items if s.eligible and s.extra.get("transient")]
    if unfetched:
        # A passing fault must not store a worse photo for good: the one that could not be
        # fetched may be the best, so nothing is settled and the next run looks again.
        reason = _incomplete(
            "the thumbnail of "
            + ", ".join(f"{s.source.title} ({s.error})" for s in unfetched)
            + " could not be fetched"
        )
        return Outcome.FAILED, {**common, **_fetch_failed(poi, ranking, reason, has_real_image)}
    winners = sorted(
        (
            s
            for s in scored
            if s.eligible and s.rank_score is not None and s.rank_score >= threshold
        ),
        key=lambda s: (-s.evidence.tier, -s.rank_score, s.source.search_rank),
    )
    if winners and has_real_image and not replace_existing:
        flags.resolve_flag(poi, ranking)
        reason = f"Best candidate {winners[0].score:.2f}; existing image kept"
        return Outcome.RANKED, {**common, "reason": reason}
    if winners:
        stored, failures, stopped_transient, taken = _store_first(poi, winners, rows)
        if stored is not None:
            flags.resolve_flag(poi, ranking)
            reason = f"Stored {stored.source.title} (score {stored.score:.2f})"
            blurred = [
                s
                for s in scored
                if s.eligible and s.score > stored.score and s.rank_score < s.score
            ]
            if blurred:  # say why a higher raw score lost, for the curator comparing cards
                reason += "; ranked below it as damaged copies: " + ", ".join(
                    f"{s.source.title} ({s.score:.2f}, {s.extra['damage']})" for s in blurred
                )
            fields = {"reason": reason[:500], "image_origin": PoiRanking.Origin.PIPELINE}
            return Outcome.UPDATED, {**common, **fields}
        if taken and not failures and not has_real_image:
            # Every photo good enough here is another POI's, which it names: a curator looks.
            reason = "Its best photos are other POIs' of the city: " + "; ".join(taken)
            flag = flags.set_flag(poi, ranking, flags.SHARED_PHOTO, reason)
            return Outcome.FLAGGED, {**common, "reason": reason[:500], "validation": flag}
        if taken and not failures:
            flags.resolve_flag(poi, ranking)
            return Outcome.RANKED, {**common, "reason": "; ".join(taken)[:500]}
        reason = "Winner download failed: " + "; ".join(failures)
        if stopped_transient:
            reason = _incomplete(reason)
        return Outcome.FAILED, {**common, **_fetch_failed(poi, ranking, reason, has_real_image)}
    if has_real_image:
        flags.resolve_flag(poi, ranking)  # the POI has an image: nothing to flag
        reason = _why_nothing(items, threshold, ranking)
        return Outcome.RANKED, {**common, "reason": reason[:500]}
    aggregate = _flag_for(items)
    reason = _why_nothing(items, threshold, ranking)
    flag = flags.set_flag(poi, ranking, aggregate, reason)
    fields = {**common, "reason": reason[:500], "validation": flag}
    if settings.IMAGE_RANKING_FALLBACK and not poi.image_file:
        from image_ranking.pipeline.fallback import apply_category_fallback

        if apply_category_fallback(poi, ranking=ranking):
            fields["image_origin"] = PoiRanking.Origin.FALLBACK
    return Outcome.FLAGGED, fields


def _incomplete(cause: str) -> str:
    return f"Incomplete: {cause}; nothing stored, the next run tries again"


def _fetch_failed(
    poi: PointOfInterest, ranking: PoiRanking, reason: str, has_real_image: bool
) -> dict[str, Any]:
    """A Commons or download fault: flagged `fetch_failed` unless the POI keeps a real image."""
    if has_real_image:
        logger.warning("POI %s keeps its image; %s", poi.pk, reason)
        return {"reason": reason[:500]}
    flag = flags.set_flag(poi, ranking, flags.FETCH_FAILED, reason)
    return {"reason": reason[:500], "validation": flag}


def _flag_for(items: list[_Scored]) -> str:
    """The flag's reason from its cause: scores too low, thumbnails that could not be
    fetched (nothing scored, and every eligible candidate failed), or nothing usable."""
    eligible = [s for s in items if s.eligible]
    if any(s.score is not None for s in eligible):
        return flags.BELOW_THRESHOLD
    if eligible and all(s.error.startswith("thumbnail download failed") for s in eligible):
        return flags.FETCH_FAILED
    return flags.NO_IMAGES


def _why_nothing(items: list[_Scored], threshold: float, ranking: PoiRanking) -> str:
    if not items:
        if ranking.file_titles:
            return "None of the File: titles chosen by a curator is a raster photo on Commons"
        if ranking.search_query:
            return (
                f"No raster photo found on Commons for the curator's query “{ranking.search_query}”"
            )
        return "No raster photo found on Commons for this name"
    eligible = [s for s in items if s.eligible and s.score is not None]
    if eligible:
        parts = []
        for s in sorted(eligible, key=lambda s: -s.rank_score):
            parts.append(f"{s.score:.2f}{_blur_note(s)}")
        return f"All scores below threshold {threshold:.2f}: {', '.join(parts)}"
    far = sum(1 for s in items if not s.eligible)
    broken = sum(1 for s in items if s.error)
    return (
        f"No usable candidate among {len(items)}: {far} too far from the POI, "
        f"{broken} could not be fetched or decoded"
    )


def _blur_note(item: _Scored) -> str:
    """Why a candidate ranks under its NIMA score, for the curator reading the reason."""
    if "damage" not in item.extra:
        return ""
    return f" ({item.extra['damage']}, ranked {item.rank_score:.2f})"


def search_description(ranking: PoiRanking, poi: PointOfInterest) -> str:
    """What a ranking of the POI sends to Commons, in a curator's words (shown on its card)."""
    if ranking.file_titles:
        return ("File titles chosen by a curator: " + ", ".join(ranking.file_titles))[:500]
    if ranking.search_query:
        return f"filetype:bitmap {ranking.search_query} (a curator's query)"[:500]
    return f"filetype:bitmap {poi.name}"[:500]


def _most_relevant(
    poi: PointOfInterest, found: list[Any], *, chosen_by_curator: bool = False
) -> list[_Scored]:
    """The MAX_CANDIDATES hits most likely to show this POI (naming it first, then naming
    nothing, then naming another POI of the city), in search order; one naming another POI
    cannot win. Files a curator named are this POI's by their word."""
    place, others = relevance.city_places(poi)
    items = [
        _Scored(
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


def _apply_relevance_guard(poi: PointOfInterest, items: list[_Scored]) -> str:
    """A candidate photographed far from the POI shows another place with the same name.
    Returns how the distance could be checked (PoiRanking.DistanceCheck), for the card."""
    from image_ranking.commons.client import has_geodata

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
    from image_ranking.commons.renditions import rendition_or_original

    return rendition_or_original(candidate, int(settings.IMAGE_RANKING_THUMB_WIDTH))


def _score_batch(items: list[_Scored], scorer: Any) -> None:
    """Fetch every thumbnail into memory, then score all decodable ones in ONE batch."""
    from image_ranking.commons.downloads import DownloadError, fetch_image_bytes
    from image_ranking.pipeline.storage import max_pixels, upright
    from image_ranking.scoring.imaging import ImageRejected, open_image, to_rgb

    cap = int(settings.IMAGE_RANKING_THUMB_MAX_BYTES)
    width = int(settings.IMAGE_RANKING_THUMB_WIDTH)
    images, owners = [], []
    for item in items:
        try:
            url = scoring_url(item.source)
        except ValueError as exc:  # no standard rendition (Commons sent `thumberror`)
            item.error = f"no thumbnail to score: {exc}"[:500]
            logger.info("Candidate %r: %s", item.source.title, item.error)
            continue
        try:
            data = fetch_image_bytes(url, max_bytes=cap)
            image = open_image(data, max_pixels=max_pixels(), at_most=width)
            image = _within(to_rgb(upright(image, data)), 2 * width)
            del data
        except DownloadError as exc:
            item.error = f"thumbnail download failed: {exc}"[:500]
            item.extra["transient"] = exc.transient
        except ImageRejected as exc:
            item.error = f"thumbnail rejected: {exc}"[:500]
        except BudgetExhausted:
            raise  # the POI as a whole ran out of time: recorded as failed, not settled lower
        except Exception as exc:
            item.error = f"thumbnail unreadable: {type(exc).__name__}: {exc}"[:500]
        else:
            images.append(image)
            owners.append(item)
            continue
        logger.info("Candidate %r: %s", item.source.title, item.error)
    if not images:
        return
    results = scorer.score(images)
    # Only a damaged copy of another candidate (same scene: dark, washed-out, low-contrast,
    # blurred, or an enlarged crop) is pushed down, below the better copy; different photos
    # of the place are left to the model, since their exposure and detail say nothing.
    damages = quality.assess_copies(images)
    ranked = quality.ranking_scores([float(r.score) for r in results], damages)
    for item, image, result, damage, rank in zip(
        owners, images, results, damages, ranked, strict=True
    ):
        item.dhash = f"{sharpness.difference_hash(image):016x}"
        item.score = float(result.score)
        item.score_std = None if result.std is None else float(result.std)
        item.rank_score = rank
        if damage is not None:
            better = owners[damage.copy_of].source.title
            item.extra["damaged_copy_of"] = better
            item.extra["damage"] = damage.reason(better)  # "dark copy of File:X.jpg"


def _flag_shared(shared: shared_photos.Conflict, poi: PointOfInterest, title: str) -> None:
    other = PointOfInterest.objects.select_related("city").get(pk=shared.other.pk)
    ranking, _ = PoiRanking.objects.get_or_create(poi=other)
    Candidate.objects.filter(poi=other, is_winner=True, title=shared.other_title).update(
        eligible=False, ineligible_reason=f"the photo of {poi.name}, which it names"[:200]
    )
    flags.set_flag(
        other,
        ranking,
        flags.SHARED_PHOTO,
        f"its photo {title} names {poi.name} (POI {poi.pk}), which now has it; re-rank",
    )


def _within(image: Any, side: int) -> Any:
    """A thumbnail far larger than the rendition asked for (a hostile but legal answer) is
    shrunk before the batch holds it, so ten of them cannot take a worker's memory."""
    from PIL import Image

    if max(image.size) > side:
        image.thumbnail((side, side), Image.Resampling.BOX)
    return image


def _save_candidates(
    poi: PointOfInterest, items: list[_Scored], model: str
) -> dict[int, Candidate]:
    """Replace the POI's candidates with this search's (the dashboard shows the latest). The
    file that is the POI's current image stays marked the winner when it is found again, so a
    re-rank that keeps the image still knows which candidate it is."""
    rows = {}
    with transaction.atomic():
        current = set(
            Candidate.objects.filter(poi=poi, is_winner=True).values_list("sha1", flat=True)
        ) - {""}
        Candidate.objects.filter(poi=poi).delete()
        for index, item in enumerate(items):
            c = item.source
            rows[index] = Candidate.objects.create(
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
                dhash=item.dhash,
                damage=item.extra.get("damage", "")[:200],
                is_winner=bool(c.sha1) and c.sha1 in current,
            )
            item.extra["row"] = rows[index]
    return rows


def _store_first(
    poi: PointOfInterest, winners: list[_Scored], rows: dict[int, Candidate]
) -> tuple[_Scored | None, list[str], bool, list[str]]:
    """Store the best winner; if it is unusable (not an image, too large) or another POI's
    photo (`shared_photos`), the next one above threshold. A transient download fault stops
    there (third value True): a lower winner stored for good because of a passing fault is
    what this avoids. Returns (stored, download failures, stopped, photos of other POIs)."""
    from image_ranking.commons.downloads import DownloadError
    from image_ranking.pipeline.storage import StorageError, store_image_from_url, winner_url

    failures: list[str] = []
    taken: list[str] = []
    for item in winners:
        row = item.extra["row"]
        shared = shared_photos.conflict(
            poi, item.source.sha1, item.dhash, item.source.title, list(item.source.categories)
        )
        if shared is not None and not shared.keep_here:
            why = shared.reason()
            Candidate.objects.filter(pk=row.pk).update(eligible=False, ineligible_reason=why[:200])
            taken.append(f"{item.source.title}: {why}")
            logger.info("POI %s: %s is %s", poi.pk, item.source.title, why)
            continue
        try:
            store_image_from_url(poi, winner_url(item.source))
        except (DownloadError, StorageError, ValueError) as exc:
            reason = str(exc)  # DownloadError and StorageError both start with their reason
            failures.append(f"{item.source.title}: {reason}")
            Candidate.objects.filter(pk=row.pk).update(
                error=f"winner download failed: {reason}"[:500]
            )
            logger.warning("POI %s: winner %r failed: %s", poi.pk, item.source.title, reason)
            if getattr(exc, "transient", False):
                return None, failures, True, taken
            continue
        Candidate.objects.filter(poi=poi).exclude(pk=row.pk).update(is_winner=False)
        Candidate.objects.filter(pk=row.pk).update(is_winner=True)
        if shared is not None:  # it names this POI, not the other: the other must look again
            _flag_shared(shared, poi, item.source.title)
        return item, failures, False, taken
    return None, failures, False, taken
