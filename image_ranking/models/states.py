"""The one definition of each POI state image ranking knows (`RankablePoi`)."""

from __future__ import annotations

from django.db import models
from django.db.models import Exists, OuterRef, Q

from cities.models import City, PointOfInterest
from image_ranking.models.ranking import PoiRanking


class RankablePoiQuerySet(models.QuerySet):
    """The one definition of each POI state image ranking knows. Runs, the dashboard's counts
    and filters, labels and the Prefect task all use these, so they always agree.

    A POI's image is *real* when it has one that is not the category fallback; a POI is
    *missing* when it has no real image (none, or only the fallback), so "Missing image" and
    "Rank missing" take the same POIs.
    """

    def in_lists(self, list_id: int | None = None) -> RankablePoiQuerySet:
        """In at least one list (Exists, so a POI in several lists appears once)."""
        through = PointOfInterest.lists.through.objects.filter(pointofinterest_id=OuterRef("pk"))
        if list_id:
            through = through.filter(poilist_id=list_id)
        return self.filter(Exists(through))

    def in_city(self, city: City | int | str | None) -> RankablePoiQuerySet:
        """`city` is a City, its pk or its name (case-insensitive); None = every city."""
        if city is None:
            return self
        if isinstance(city, City):
            return self.filter(city=city)
        if isinstance(city, int):
            return self.filter(city_id=city)
        return self.filter(city__name__iexact=str(city))

    @staticmethod
    def condition(state: str) -> Q:
        """The condition of `state` ("with_real_image", "missing", "uses_fallback", "flagged",
        "ranked") on a POI: what its filter method applies, and what a count of the state
        aggregates over, so a count and its filter cannot disagree."""
        return _STATE_CONDITIONS[state]

    def with_real_image(self) -> RankablePoiQuerySet:
        return self.filter(self.condition("with_real_image"))

    def missing(self) -> RankablePoiQuerySet:
        return self.filter(self.condition("missing"))

    def uses_fallback(self) -> RankablePoiQuerySet:
        return self.filter(self.condition("uses_fallback"))

    def curated(self) -> RankablePoiQuerySet:
        """With a real image a curator chose: there before image ranking (no ranking row, or
        its origin unset), or picked with "use this image"; never a pipeline winner."""
        chosen = (PoiRanking.Origin.EXISTING, PoiRanking.Origin.CURATOR)
        return self.with_real_image().filter(
            Q(ranking__isnull=True) | Q(ranking__image_origin__in=chosen)
        )

    def flagged(self) -> RankablePoiQuerySet:
        """With an open image-ranking flag (any reason: no images, below threshold, fetch
        failed, internal error)."""
        return self.filter(self.condition("flagged"))

    def ranked(self) -> RankablePoiQuerySet:
        """Candidates fetched and scored at least once."""
        return self.filter(self.condition("ranked"))


_HAS_FILE = Q(image_file__isnull=False) & ~Q(image_file="")
_FALLBACK = Q(ranking__image_origin=PoiRanking.Origin.FALLBACK)
RANKED_STATUSES = (PoiRanking.Status.RANKED, PoiRanking.Status.UPDATED, PoiRanking.Status.FLAGGED)
_REAL_IMAGE = _HAS_FILE & ~_FALLBACK
_STATE_CONDITIONS = {
    "with_real_image": _REAL_IMAGE,
    "missing": ~_REAL_IMAGE,  # no image, or only the category fallback
    "uses_fallback": _HAS_FILE & _FALLBACK,
    "flagged": Q(ranking__validation__isnull=False),
    "ranked": Q(ranking__status__in=RANKED_STATUSES),
}


class RankablePoi(PointOfInterest):
    """A PointOfInterest as image ranking sees it: `RankablePoi.objects.in_lists().missing()`."""

    objects = RankablePoiQuerySet.as_manager()

    class Meta:
        proxy = True
        verbose_name = "point of interest"
