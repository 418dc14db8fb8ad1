"""Rank one POI: the single function every entry point uses (Django-Q task, command, flow).

claim -> ONE Commons search -> relevance guard -> thumbnails in memory -> one scoring batch
-> candidates saved -> the best eligible score >= threshold stored (unless an existing image is
kept) or the POI flagged -> recorded in one transaction (`outcome`) -> claim released.

Everything that changes the POI's state happens under its claim, failures included: whatever
goes wrong after the claim is taken is recorded as the POI's failure before the claim goes.
The function returns what happened (`PoiResult`); the run layer records its run item. A
Commons fault flags the POI `fetch_failed`, an unexpected error `internal_error`; every POI
that ends without a real image has exactly one flag; nothing here stops a batch. The work
runs within a time budget below the task timeout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings
from django_q.exceptions import TimeoutException

from cities.models import PointOfInterest
from image_ranking.commons.answers import titles_not_found
from image_ranking.commons.budget import time_budget
from image_ranking.commons.client import CommonsError, get_commons_client
from image_ranking.models import AdoptedThreshold, PoiRanking
from image_ranking.pipeline import candidates, fallback, flags, outcome, winner
from image_ranking.pipeline.candidates import MAX_CANDIDATES, Scored
from image_ranking.pipeline.claims import claim_poi, release_claim
from image_ranking.pipeline.outcome import Decision, Job
from image_ranking.pipeline.winner import incomplete
from image_ranking.scoring import get_scorer

logger = logging.getLogger(__name__)

Status = PoiRanking.Status


class Outcome(StrEnum):
    UPDATED = "updated"  # a winner was stored as the POI's image
    RANKED = "ranked"  # candidates stored, the existing image kept
    FLAGGED = "flagged"  # nothing good enough: flagged (maybe a fallback image)
    FAILED = "failed"  # Commons or the winner's download failed, or an unexpected error
    SKIPPED = "skipped"  # another job holds the POI


@dataclass(frozen=True)
class PoiResult:
    outcome: Outcome
    reason: str = ""
    held_by_run: str = ""  # SKIPPED: the run whose job holds the POI ("0": a curator's action)


def rank_poi(
    poi_id: int,
    *,
    threshold: float | None = None,
    replace_existing: bool = False,
    run_id: int | None = None,
    model_name: str | None = None,
) -> PoiResult:
    """Rank one POI's Commons candidates and store the winner or flag the POI, within the
    POI's time budget, under its claim; returns what happened."""
    poi = PointOfInterest.objects.select_related("city").filter(pk=poi_id).first()
    if poi is None:
        logger.warning("POI %s no longer exists", poi_id)
        return PoiResult(Outcome.FAILED, "the POI no longer exists")
    ranking, token = claim_poi(poi, run_id)
    if token is None:
        holder_run = ranking.claimed_by.split(":", 1)[0]
        logger.info("POI %s is being ranked by job %s; skipped", poi.pk, ranking.claimed_by)
        holder = f"run {holder_run}" if holder_run != "0" else "a curator's action"
        return PoiResult(Outcome.SKIPPED, f"being ranked by {holder}", holder_run)
    try:
        # No threshold given (command line, Prefect): the one curators adopted, else the setting.
        limit = threshold if threshold is not None else AdoptedThreshold.current(model_name)
        job = Job(poi, ranking, token, run_id, limit)
        # Every wait at the network edge gives up within the budget, and says so in the
        # Commons or download error it ends as (a fetch_failed flag).
        with time_budget(poi_budget_seconds()):
            decision = _rank_claimed(job, replace_existing, model_name)
        return PoiResult(Outcome(decision.outcome), decision.reason)
    except outcome.ClaimLost as exc:
        logger.error("%s", exc)
        return PoiResult(Outcome.FAILED, str(exc))
    except (Exception, TimeoutException) as exc:
        # Django-Q's TimeoutException is a SystemExit: recorded, then raised on as it means.
        timeout = isinstance(exc, TimeoutException)
        reason = (
            f"exceeded the task timeout: {exc}"
            if timeout
            else f"unexpected error: {type(exc).__name__}: {exc}"
        )
        if not timeout:
            logger.exception("Ranking POI %s failed unexpectedly", poi.pk)
        outcome.fail(poi.pk, reason, token)
        if timeout:
            raise
        return PoiResult(Outcome.FAILED, reason)
    finally:
        release_claim(ranking, token)


def poi_budget_seconds() -> float:
    """The time one POI may take: the task timeout less a margin to record the outcome."""
    timeout = float(settings.Q_CLUSTER.get("timeout", 300))
    return max(1.0, timeout - min(30.0, max(2.0, timeout / 10)))


def _rank_claimed(job: Job, replace_existing: bool, model_name: str | None) -> Decision:
    poi, ranking = job.poi, job.ranking
    scorer = get_scorer(model_name)  # ScoringModelMissing propagates: a deployment fault
    searched = search_description(ranking, poi)
    try:
        found, searched = _search(poi, ranking, searched)
    except CommonsError as exc:
        failed = Decision(Status.FAILED, f"Commons search failed: {exc}", flags.FETCH_FAILED)
        return job.record(failed, searched_for=searched)

    items = candidates.most_relevant(poi, found, chosen_by_curator=bool(ranking.file_titles))
    distance_check = candidates.apply_distance_guard(poi, items)
    candidates.score_batch(items, scorer)
    candidates.save_candidates(poi, items, scorer.name)
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

    unfetched = [s for s in items if s.eligible and s.transient]
    if unfetched:
        # A passing fault must not store a worse photo for good: the one that could not be
        # fetched may be the best, so nothing is settled and the next run looks again.
        reason = incomplete(
            "the thumbnail of "
            + ", ".join(f"{s.source.title} ({s.error})" for s in unfetched)
            + " could not be fetched"
        )
        return job.record(Decision(Status.FAILED, reason, flags.FETCH_FAILED), **common)
    winners = sorted(
        (
            s
            for s in scored
            if s.eligible and s.rank_score is not None and s.rank_score >= job.threshold
        ),
        key=lambda s: (-s.evidence.tier, -s.rank_score, s.source.search_rank),
    )
    if winners and job.has_real_image and not replace_existing:
        reason = f"Best candidate {winners[0].score:.2f}; existing image kept"
        return job.record(Decision(Status.RANKED, reason), **common)
    if winners:
        return winner.store_first(job, winners, scored, common)
    reason = _why_nothing(items, job.threshold, ranking)
    if job.has_real_image:
        return job.record(Decision(Status.RANKED, reason), **common)
    decision = Decision(Status.FLAGGED, reason, _flag_for(items))
    if settings.IMAGE_RANKING_FALLBACK and not poi.image_file:
        decision.image = fallback.written(poi)
    return job.record(decision, **common)


def _search(poi: PointOfInterest, ranking: PoiRanking, searched: str) -> tuple[list, str]:
    """The one Commons request: the curator's File: titles, else the search (the curator's
    query, else the POI's name). Raises CommonsError."""
    client = get_commons_client()
    if ranking.file_titles:
        titles = list(ranking.file_titles)[:MAX_CANDIDATES]
        found = client.candidates_for_titles(titles)
        if missing := titles_not_found(titles, found):  # said on the card, not dropped
            searched = f"{searched}; not on Commons or no photo: {', '.join(missing)}"[:500]
        return found, searched
    depth = max(MAX_CANDIDATES, int(settings.IMAGE_RANKING_SEARCH_DEPTH))
    return client.search_candidates(ranking.search_query or poi.name, limit=depth), searched


def _flag_for(items: list[Scored]) -> str:
    """The flag's reason from its cause: scores too low, thumbnails that could not be
    fetched (nothing scored, and every eligible candidate failed), or nothing usable."""
    eligible = [s for s in items if s.eligible]
    if any(s.score is not None for s in eligible):
        return flags.BELOW_THRESHOLD
    if eligible and all(s.error.startswith("thumbnail download failed") for s in eligible):
        return flags.FETCH_FAILED
    return flags.NO_IMAGES


def _why_nothing(items: list[Scored], threshold: float, ranking: PoiRanking) -> str:
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
        parts = [
            f"{s.score:.2f}{damage_note(s)}" for s in sorted(eligible, key=lambda s: -s.rank_score)
        ]
        return f"All scores below threshold {threshold:.2f}: {', '.join(parts)}"
    far = sum(1 for s in items if not s.eligible)
    broken = sum(1 for s in items if s.error)
    return (
        f"No usable candidate among {len(items)}: {far} too far from the POI, "
        f"{broken} could not be fetched or decoded"
    )


def damage_note(item: Scored) -> str:
    """Why a candidate ranks under its model score, for the curator reading the reason."""
    return f" ({item.damage}, ranked {item.rank_score:.2f})" if item.damage else ""


def search_description(ranking: PoiRanking, poi: PointOfInterest) -> str:
    """What a ranking of the POI sends to Commons, in a curator's words (shown on its card)."""
    if ranking.file_titles:
        return ("File titles chosen by a curator: " + ", ".join(ranking.file_titles))[:500]
    if ranking.search_query:
        return f"filetype:bitmap {ranking.search_query} (a curator's query)"[:500]
    return f"filetype:bitmap {poi.name}"[:500]
