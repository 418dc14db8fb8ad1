"""Job claims on POIs: whoever changes a POI's image holds its claim, so two jobs (or a job
and a curator's click) never work on the same POI at once.

A claim is one conditional UPDATE on PoiRanking (atomic on SQLite and PostgreSQL alike). A
claim older than Django-Q's task timeout belongs to a worker that died: it may be taken over.

`claimed_at` is written and compared on the DATABASE's clock (Django's `Now()`: PostgreSQL's
STATEMENT_TIMESTAMP(), SQLite's STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW') with milliseconds), in the
same statement, never with a worker host's clock: a host 5 min ahead would otherwise see every
live claim as stale, and two jobs would work on one POI.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError
from django.db.models import Q
from django.db.models.functions import Now

from cities.models import PointOfInterest
from image_ranking.models import PoiRanking


class PoiBusy(Exception):
    """Another job holds the POI's claim right now."""


def claim_timeout() -> timedelta:
    """A claim older than Django-Q's task timeout belongs to a dead worker."""
    return timedelta(seconds=int(settings.Q_CLUSTER.get("timeout", 300)))


def claim_poi(poi: PointOfInterest, run_id: int | None) -> tuple[PoiRanking, str | None]:
    """Take the POI's claim; returns its ranking row and the token, or None when it is held.

    The token starts with the run id, so a skipped job can tell whether its own run holds it.
    """
    try:
        ranking, _ = PoiRanking.objects.get_or_create(poi=poi)
    except IntegrityError:  # another job created the row at the same moment
        ranking = PoiRanking.objects.get(poi=poi)
    token = f"{run_id or 0}:{uuid.uuid4().hex[:16]}"
    taken = (
        PoiRanking.objects.filter(pk=ranking.pk)
        .filter(unclaimed())
        .update(claimed_by=token, claimed_at=Now())
    )
    ranking.refresh_from_db()
    return ranking, (token if taken else None)


def unclaimed() -> Q:
    """No job holds the claim: none was taken, or it is stale (its worker died). Compared on
    the database's clock, not this host's."""
    stale = Q(claimed_at__lt=Now() - claim_timeout())
    return Q(claimed_by="") | Q(claimed_at__isnull=True) | stale


def release_claim(ranking: PoiRanking, token: str) -> None:
    PoiRanking.objects.filter(pk=ranking.pk, claimed_by=token).update(
        claimed_by="", claimed_at=None
    )


@contextmanager
def holding(poi: PointOfInterest, run_id: int | None = None) -> Iterator[tuple[PoiRanking, str]]:
    """Hold the POI's claim for a curator's action (its ranking row and the token); PoiBusy
    when a job is ranking it."""
    ranking, token = claim_poi(poi, run_id=run_id)
    if token is None:
        raise PoiBusy(f"{poi.name} is being ranked right now; try again in a moment")
    try:
        yield ranking, token
    finally:
        release_claim(ranking, token)
