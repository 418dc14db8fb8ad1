"""Store the best winner of a POI: download only it, and keep one photo in one place.

Winners are tried best first. One already another POI's photo is skipped before any download
(a look without a lock); the one downloaded is stored only if the transaction that stores it
agrees, under the city's lock (`outcome.record`), else the next one is tried. A winner that is
unusable for good (not an image, too large) gives way to the next; a transient download fault
stops there, so a passing fault never stores a worse photo for good.
"""

from __future__ import annotations

import logging
from typing import Any

from image_ranking.commons.downloads import DownloadError
from image_ranking.models import Candidate, PoiRanking
from image_ranking.pipeline import flags, shared_photos, storage
from image_ranking.pipeline.candidates import Scored
from image_ranking.pipeline.outcome import Decision, Job, NewImage
from image_ranking.pipeline.storage import StorageError

logger = logging.getLogger(__name__)

Status = PoiRanking.Status


def store_first(
    job: Job, winners: list[Scored], scored: list[Scored], common: dict[str, Any]
) -> Decision:
    """Store the first winner that can be stored, or record why none was; returns the
    recorded decision."""
    poi = job.poi
    failures: list[str] = []
    taken: list[str] = []
    for item in winners:
        photo = shared_photos.Photo(
            item.source.sha1, item.scene, item.source.title, item.source.categories
        )
        early = shared_photos.conflict(poi, photo)
        if early is not None and not early.keep_here:
            taken.append(_mark_taken(poi, item, early))
            continue
        try:
            name = storage.write_file(poi, storage.fetch_prepared(storage.winner_url(item.source)))
        except (DownloadError, StorageError, ValueError) as exc:
            reason = str(exc)  # DownloadError and StorageError both start with their reason
            failures.append(f"{item.source.title}: {reason}")
            Candidate.objects.filter(pk=item.row.pk).update(
                error=f"winner download failed: {reason}"[:500]
            )
            logger.warning("POI %s: winner %r failed: %s", poi.pk, item.source.title, reason)
            if getattr(exc, "transient", False):
                why = incomplete("Winner download failed: " + "; ".join(failures))
                return job.record(Decision(Status.FAILED, why, flags.FETCH_FAILED), **common)
            continue
        stored = Decision(
            Status.UPDATED,
            _stored_reason(item, scored),
            image=NewImage(name, PoiRanking.Origin.PIPELINE, item.row, item.scene),
        )
        found = job.offer(stored, **common)
        if found is None:
            return stored
        taken.append(_mark_taken(poi, item, found))
    if taken and not failures and not job.has_real_image:
        # Every photo good enough here is another POI's, which it names: a curator looks.
        reason = "Its best photos are other POIs' of the city: " + "; ".join(taken)
        return job.record(Decision(Status.FLAGGED, reason, flags.SHARED_PHOTO), **common)
    if taken and not failures:
        return job.record(Decision(Status.RANKED, "; ".join(taken)), **common)
    reason = "Winner download failed: " + "; ".join(failures)
    return job.record(Decision(Status.FAILED, reason, flags.FETCH_FAILED), **common)


def incomplete(cause: str) -> str:
    return f"Incomplete: {cause}; nothing stored, the next run tries again"


def _stored_reason(item: Scored, scored: list[Scored]) -> str:
    reason = f"Stored {item.source.title} (score {item.score:.2f})"
    damaged = [s for s in scored if s.eligible and s.score > item.score and s.rank_score < s.score]
    if damaged:  # say why a higher model score lost, for the curator comparing cards
        reason += "; ranked below it as damaged copies: " + ", ".join(
            f"{s.source.title} ({s.score:.2f}, {s.damage or 'penalised'})" for s in damaged
        )
    return reason[:500]


def _mark_taken(poi: Any, item: Scored, found: shared_photos.Conflict) -> str:
    why = found.reason()
    Candidate.objects.filter(pk=item.row.pk).update(eligible=False, ineligible_reason=why[:200])
    logger.info("POI %s: %s is %s", poi.pk, item.source.title, why)
    return f"{item.source.title}: {why}"
