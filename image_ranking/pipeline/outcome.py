"""What happened to one POI, written in ONE transaction under the POI's claim.

A ranking, a curator's choice or a category fallback ends in a `Decision`: the outcome, the
reason, the PoiRanking fields, the flag to raise should the POI end without a real image, and
maybe a new image (a file already written under a free name). `record()` applies it at once:

- the POI's claim is checked under a row lock (`claimed_by` = this job's token): a job whose
  claim was taken over (its worker was thought dead) writes nothing;
- a new image from a Commons file first takes the city's row lock (`SELECT ... FOR UPDATE` on
  PostgreSQL; on SQLite every write transaction is IMMEDIATE, which takes the database's write
  lock at BEGIN) and asks `shared_photos.conflict()` inside it, so two workers never store one
  scene for two POIs of a city: the second sees the first's committed photo and is refused;
- the image file, its origin, the file's identity (sha1, title, scene), the winner candidate,
  the status, the reason and the flag change together: a failure or a SIGKILL anywhere leaves
  all of them old, never a mix;
- a POI that names the photo takes it from another POI only if it can hold that POI's claim
  (its ranking row, locked, with no live claim): that POI then loses the photo and is flagged
  `shared_photo` in the same transaction;
- only after the commit are replaced files deleted (when no row references them).

Why row locks rather than a constraint: "the same scene" is a similarity test, not an equality a
unique index can hold; the lock serializes exactly the writes that can break it (a stored
photo of one city) and nothing else.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models.functions import Now
from django.utils import timezone

from cities.models import City, PointOfInterest
from image_ranking.models import Candidate, ImageTrainingData, PoiRanking
from image_ranking.pipeline import claims, files, flags, shared_photos, storage

logger = logging.getLogger(__name__)

Origin = PoiRanking.Origin


class ClaimLost(Exception):
    """The POI's claim is no longer this job's: nothing was written."""


@dataclass(frozen=True)
class NewImage:
    """A file already written under a free name, to become the POI's image."""

    name: str
    origin: str
    candidate: Candidate | None = None  # the Commons file it came from; None = the fallback
    scene: bytes = b""  # its scene features (`scoring.scenes`), for one photo, one place


@dataclass
class Decision:
    # A PoiRanking.Status value ("updated", "ranked", "flagged", "failed"); "" keeps the
    # status and reason (a curator's fallback click changes only the image).
    outcome: str
    reason: str
    flag: str = flags.INTERNAL_ERROR  # raised if the POI ends without a real image; "" keeps it
    fields: dict[str, Any] = field(default_factory=dict)  # other PoiRanking fields
    image: NewImage | None = None
    tie_break: bool = True  # a pipeline winner naming this POI may take another POI's photo


@dataclass
class Job:
    """One claimed POI being ranked, and what every decision recorded for it carries."""

    poi: PointOfInterest
    ranking: PoiRanking
    token: str
    run_id: int | None
    threshold: float

    @property
    def has_real_image(self) -> bool:
        """Flags are for POIs that lack a photo; one with a real image is never flagged."""
        return bool(self.poi.image_file) and not self.ranking.uses_fallback

    def offer(self, decision: Decision, **fields: Any) -> shared_photos.Conflict | None:
        """Record `decision` with the job's fields, unless its new image is another POI's
        photo (the conflict is returned, nothing written)."""
        decision.fields = {"threshold": self.threshold, **fields, **decision.fields}
        return record(self.poi, self.token, decision, run_id=self.run_id)

    def record(self, decision: Decision, **fields: Any) -> Decision:
        self.offer(decision, **fields)
        return decision


def record(
    poi: PointOfInterest, token: str, decision: Decision, *, run_id: int | None = None
) -> shared_photos.Conflict | None:
    """Apply `decision` in one transaction (see the module docstring). Returns the conflict
    when its new image is another POI's photo (nothing written, the file discarded); raises
    ClaimLost when the claim is gone."""
    image = decision.image
    replaced: list[str] = []
    try:
        with transaction.atomic():
            found = _apply(poi, token, decision, run_id, replaced)
    except BaseException:
        if image is not None:
            storage.discard_file(image.name)
        raise
    if found is not None and image is not None:
        storage.discard_file(image.name)
    for name in replaced:
        files.delete_if_unreferenced(_storage(), name)
    return found


def fail(poi_id: int, reason: str, token: str | None = None) -> bool:
    """Record a POI as failed with `reason` (flagged `internal_error` unless it keeps a real
    image), under its claim: the caller's `token`, or the claim taken here. False when
    another live job holds it (that job records its own outcome) or the POI is gone."""
    poi = PointOfInterest.objects.select_related("city").filter(pk=poi_id).first()
    if poi is None:
        return False
    claimed_here = token is None
    if claimed_here:
        ranking, token = claims.claim_poi(poi, run_id=None)
        if token is None:
            logger.info("POI %s is held by %s; its failure is theirs to record", poi_id, ranking)
            return False
    try:
        record(poi, token, Decision(PoiRanking.Status.FAILED, reason, flags.INTERNAL_ERROR))
    except ClaimLost:
        return False
    finally:
        if claimed_here:
            claims.release_claim(ranking, token)
    return True


def _apply(
    poi: PointOfInterest,
    token: str,
    decision: Decision,
    run_id: int | None,
    replaced: list[str],
) -> shared_photos.Conflict | None:
    image = decision.image
    source = image.candidate if image is not None else None
    if source is not None:  # serializes every stored photo of the city (see docstring)
        list(City.objects.select_for_update().filter(pk=poi.city_id).values_list("pk"))
    ranking = PoiRanking.objects.select_for_update().filter(poi=poi, claimed_by=token).first()
    if ranking is None:
        raise ClaimLost(f"POI {poi.pk}: its claim {token} was taken over; nothing recorded")
    current = PointOfInterest.objects.select_related("city").get(pk=poi.pk)
    if source is not None:
        photo = shared_photos.Photo(
            source.sha1, image.scene, source.title, tuple(source.categories)
        )
        found = shared_photos.conflict(current, photo, tie_break=decision.tie_break)
        if found is not None:
            old = _take_from(found, current, source.title) if found.keep_here else None
            if old is None:
                return dataclasses.replace(found, keep_here=False)
            if old:
                replaced.append(old)
    if image is not None:
        _switch_image(current, ranking, image, replaced)
    if decision.outcome:
        ranking.status = decision.outcome
        ranking.reason = decision.reason[:500]
    ranking.ranked_at = timezone.now()
    if run_id is not None:
        ranking.run_id = run_id
    for name, value in decision.fields.items():
        setattr(ranking, name, value)
    if current.image_file and ranking.image_origin != Origin.FALLBACK:
        flags.resolve_flag(current, ranking)  # a POI with a real image is never flagged
    elif decision.flag:
        flags.set_flag(current, ranking, decision.flag, decision.reason)
    ranking.save()
    return None


def _switch_image(
    poi: PointOfInterest, ranking: PoiRanking, image: NewImage, replaced: list[str]
) -> None:
    old = poi.image_file.name or ""
    PointOfInterest.objects.filter(pk=poi.pk).update(image_file=image.name, updated_at=Now())
    source = image.candidate
    ranking.image_origin = image.origin
    ranking.image_sha1 = source.sha1 if source else ""
    ranking.image_title = source.title[:500] if source else ""
    ranking.image_scene = image.scene if source else b""
    Candidate.objects.filter(poi=poi, is_winner=True).update(is_winner=False)
    if source is not None:
        Candidate.objects.filter(pk=source.pk).update(is_winner=True)
    if old and old != image.name:
        replaced.append(old)
        _drop_labels_of(poi, old)
    poi.image_file.name = image.name


def _take_from(found: shared_photos.Conflict, poi: PointOfInterest, title: str) -> str | None:
    """The other POI loses its photo to `poi`, which names it: under that POI's claim (its
    row locked and no live claim on it), else None and `poi` leaves the photo to it. Returns
    the other's old file name ("" when it had none) for deletion after the commit."""
    other_ranking = (
        PoiRanking.objects.select_for_update()
        .filter(poi_id=found.other_id, image_origin=Origin.PIPELINE)
        .filter(claims.unclaimed())
        .first()
    )
    if other_ranking is None:  # being ranked, or a curator's pick: it keeps its photo
        return None
    other = PointOfInterest.objects.select_related("city").get(pk=found.other_id)
    old = other.image_file.name or ""
    PointOfInterest.objects.filter(pk=other.pk).update(image_file=None, updated_at=Now())
    other.image_file.name = None
    Candidate.objects.filter(poi=other, is_winner=True).update(
        is_winner=False,
        eligible=False,
        ineligible_reason=f"the photo of {poi.name}, which it names"[:200],
    )
    reason = f"its photo {title} names {poi.name} (POI {poi.pk}), which now has it; re-rank"
    other_ranking.image_origin = Origin.EXISTING
    other_ranking.image_sha1, other_ranking.image_title, other_ranking.image_scene = "", "", b""
    other_ranking.status = PoiRanking.Status.FLAGGED
    other_ranking.reason = reason[:500]
    other_ranking.ranked_at = timezone.now()
    flags.set_flag(other, other_ranking, flags.SHARED_PHOTO, reason)
    other_ranking.save()
    if old:
        _drop_labels_of(other, old)
    logger.warning("POI %s lost its photo %s to POI %s, which names it", other.pk, title, poi.pk)
    return old


def _drop_labels_of(poi: PointOfInterest, name: str) -> None:
    """Labels of a replaced file described an image that no longer exists; the new file may
    live at the same URL, so they would otherwise be read as labels of the new one."""
    dropped, _ = ImageTrainingData.objects.filter(poi=poi, image_url=_storage().url(name)).delete()
    if dropped:
        logger.info("Dropped %d label(s) of the replaced image of POI %s", dropped, poi.pk)


def _storage() -> Any:
    return PointOfInterest._meta.get_field("image_file").storage
