"""A curator's "Use this image": store that candidate as the POI's image, under the POI's claim.

The check "already another POI's photo" and the store happen under the claim, and the
authoritative check again inside the transaction that stores it (`outcome.record`, city lock),
so a curator and a ranking job never give one photo to two POIs. The download waits for the
shared media limit at most `max_wait` seconds: the dashboard asks with a short wait and, when
Commons makes it wait longer, hands the choice to a background task (a `Kind.USE` run) instead
of holding a web worker.
"""

from __future__ import annotations

import logging
from typing import Any

from cities.models import PointOfInterest
from image_ranking.commons.downloads import fetch_image_bytes
from image_ranking.models import Candidate, PoiRanking
from image_ranking.pipeline import outcome, shared_photos, storage
from image_ranking.pipeline.claims import PoiBusy, holding
from image_ranking.pipeline.outcome import Decision, NewImage
from image_ranking.pipeline.storage import StorageError

logger = logging.getLogger(__name__)


class NotUsed(Exception):
    """The candidate is another POI's photo (one photo, one place); nothing changed."""

    def __init__(self, found: shared_photos.Conflict) -> None:
        super().__init__(found.reason())
        self.conflict = found


def taken_by(candidate: Candidate) -> shared_photos.Conflict | None:
    """Another POI of the city whose stored photo this very file is (no lock, no download: for
    the dashboard's immediate answer; `use_candidate` decides for the file and its scene under
    the lock, once it has the image)."""
    poi = PointOfInterest.objects.select_related("city").get(pk=candidate.poi_id)
    return shared_photos.conflict(poi, _photo(candidate), tie_break=False)


def use_candidate(
    candidate: Candidate,
    *,
    user: Any = None,
    max_wait: float = 120.0,
    run_id: int | None = None,
) -> None:
    """Store `candidate` as its POI's image (origin "curator"), marked the winner.

    Raises NotUsed (another POI's photo), StorageError (a job holds the POI, the image is
    unusable) or DownloadError (reason "rate_limited" when the media limit would make it wait
    longer than `max_wait`)."""
    poi = PointOfInterest.objects.select_related("city").get(pk=candidate.poi_id)
    try:
        with holding(poi, run_id) as (ranking, token):
            found = shared_photos.conflict(poi, _photo(candidate), tie_break=False)
            if found is not None:
                raise NotUsed(found)
            data = fetch_image_bytes(
                storage.winner_url(candidate),
                max_bytes=storage.max_download_bytes(),
                max_wait=max_wait,
            )
            prepared = storage.prepare_bytes(data)
            name = storage.write_file(poi, prepared)
            who = getattr(user, "get_username", lambda: "")() if user is not None else ""
            best = ranking.best_score if ranking.best_score is not None else candidate.score
            chosen = Decision(
                PoiRanking.Status.UPDATED,
                f"Chosen by {who or 'a curator'}: {candidate.title}",
                fields={"best_score": best},
                image=NewImage(
                    name, PoiRanking.Origin.CURATOR, candidate, storage.scene_of(prepared)
                ),
                tie_break=False,
            )
            found = outcome.record(poi, token, chosen, run_id=run_id)
            if found is not None:
                raise NotUsed(found)
    except PoiBusy as exc:
        raise StorageError(str(exc)) from exc
    logger.info("POI %s: a curator chose %s", poi.pk, candidate.title)


def _photo(candidate: Candidate) -> shared_photos.Photo:
    return shared_photos.Photo(candidate.sha1, b"", candidate.title, tuple(candidate.categories))
