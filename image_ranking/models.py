"""Models of the image-ranking feature.

- `RankingRun`: one "rank missing/all" request (or one POI's re-rank).
- `RankingRunItem`: what happened to one POI in one run; a run's progress is a query over them.
- `PoiRanking`: the latest ranking state of one POI (status, image origin, flag, job claim).
- `RankablePoi`: PointOfInterest with the one definition of each state ("in lists", "missing",
  "flagged", ...) as QuerySet methods; every caller uses them.
- `Candidate`: a Commons image found for a POI, with its score (dashboard + training data).
- `ImageTrainingData`: a curator's good/bad label of one image of one POI (the spec's model).
- `RateLimitBucket` / `RateLimitSlot`: the token bucket and the in-flight slots shared by every
  process through the database (Wikimedia's limits hold for the whole deployment).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.db.models import Count, Exists, F, OuterRef, Q

from cities.models import City, PointOfInterest, Validation


class Scope(models.TextChoices):
    MISSING = "missing", "POIs without an image"
    ALL = "all", "All POIs in lists"


class RankingRun(models.Model):
    """One "rank" request. What happened to each of its POIs is a `RankingRunItem`; progress,
    counts and "finished" are queries over those (`tally()`), never counters."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Kind(models.TextChoices):
        BATCH = "batch", "Batch"
        POI = "poi", "One POI"
        USE = "use", "A curator's choice"  # store `candidate` (its download had to wait)

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.BATCH)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.MISSING)
    city = models.ForeignKey(City, on_delete=models.SET_NULL, null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True, help_text="Empty: the setting.")
    replace_existing = models.BooleanField(default=False)
    model_name = models.CharField(max_length=20, blank=True, default="")
    # Kind.USE: the candidate a curator chose, stored by a background task (None once a
    # re-rank has replaced the POI's candidates).
    candidate = models.ForeignKey(
        "Candidate", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # Set while the run is active, cleared when it ends: the unique constraint makes "one
    # active batch run per scope and city" atomic (two quick clicks start one run).
    active_key = models.CharField(max_length=60, null=True, blank=True, unique=True)
    message = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    swept_at = models.DateTimeField(null=True, blank=True, help_text="Last check for lost items.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.scope}, {self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    def tally(self) -> RunTally:
        """How many of the run's POIs ended how (one query)."""
        return RunTally.of(self.items.all())


@dataclass(frozen=True)
class RunTally:
    """A run's counts, derived from its items."""

    total: int = 0
    processed: int = 0
    updated: int = 0
    ranked: int = 0
    flagged: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0
    running: int = 0

    @classmethod
    def of(cls, items: models.QuerySet) -> RunTally:
        """One GROUP BY outcome: read from the (run, outcome) index alone."""
        counts = dict(
            items.order_by()
            .values_list("outcome")
            .annotate(n=Count("outcome"))
            .values_list("outcome", "n")
        )
        out = RankingRunItem.Outcome
        return cls(
            total=sum(counts.values()),
            processed=sum(counts.get(o, 0) for o in FINAL_OUTCOMES),
            updated=counts.get(out.UPDATED, 0),
            ranked=counts.get(out.RANKED, 0),
            flagged=counts.get(out.FLAGGED, 0),
            failed=counts.get(out.FAILED, 0),
            skipped=counts.get(out.SKIPPED, 0),
            cancelled=counts.get(out.CANCELLED, 0),
            running=counts.get(out.RUNNING, 0),
        )


class RankingRunItem(models.Model):
    """What happened to one POI in one run; written insert-or-update by the per-POI function
    (and by the sweep for items whose task is lost), so each POI counts exactly once."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Queued"
        RUNNING = "running", "Running"
        UPDATED = "updated", "Image stored"
        RANKED = "ranked", "Ranked (image kept)"
        FLAGGED = "flagged", "Flagged"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped (another job had it)"
        CANCELLED = "cancelled", "Cancelled"

    run = models.ForeignKey(RankingRun, on_delete=models.CASCADE, related_name="items")
    poi = models.ForeignKey(PointOfInterest, on_delete=models.CASCADE, related_name="run_items")
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.PENDING)
    reason = models.CharField(max_length=500, blank=True, default="")
    task_id = models.CharField(max_length=32, blank=True, default="", help_text="Django-Q task.")
    # The task's row in the ORM broker: "is it still queued" is a primary-key look-up, never a
    # decoding of the broker's signed payloads.
    broker_id = models.BigIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["run", "poi"], name="one_item_per_poi_and_run")
        ]
        indexes = [
            models.Index(fields=["run", "outcome"]),
            models.Index(fields=["finished_at"]),
            models.Index(fields=["started_at"]),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} · POI {self.poi_id}: {self.outcome}"

    @property
    def is_final(self) -> bool:
        return self.outcome in FINAL_OUTCOMES


OPEN_OUTCOMES = (RankingRunItem.Outcome.PENDING, RankingRunItem.Outcome.RUNNING)
FINAL_OUTCOMES = tuple(o for o in RankingRunItem.Outcome if o not in OPEN_OUTCOMES)


class PoiRanking(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RANKED = "ranked", "Ranked (image kept)"
        UPDATED = "updated", "Image stored"
        FLAGGED = "flagged", "Flagged"
        FAILED = "failed", "Failed"

    class Origin(models.TextChoices):
        EXISTING = "", "Curated (not from image ranking)"
        PIPELINE = "pipeline", "Stored by the pipeline"
        CURATOR = "curator", "Chosen by a curator"
        FALLBACK = "fallback", "Category fallback"

    # Origins whose image was stored from a candidate: the POI's winner is that image.
    STORED_FROM_CANDIDATE = (Origin.PIPELINE, Origin.CURATOR)

    poi = models.OneToOneField(PointOfInterest, on_delete=models.CASCADE, related_name="ranking")
    run = models.ForeignKey(RankingRun, on_delete=models.SET_NULL, null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    model_name = models.CharField(max_length=20, blank=True, default="")
    threshold = models.FloatField(null=True, blank=True)
    best_score = models.FloatField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, default="")
    validation = models.ForeignKey(
        Validation, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Where the POI's current image came from; empty = not from image ranking (it was there
    # before: a curated image). Bootstrap labels only curated and curator-chosen images good.
    image_origin = models.CharField(
        max_length=10, choices=Origin.choices, blank=True, default=Origin.EXISTING
    )
    # The Commons file the current image was stored from (pipeline or curator origin; empty
    # otherwise): its sha1, title and scene features. Written in the same transaction as the
    # image and the origin (`pipeline.outcome`); "one photo, one place" compares with these.
    image_sha1 = models.CharField(max_length=40, blank=True, default="")
    image_title = models.CharField(max_length=500, blank=True, default="")
    image_scene = models.BinaryField(blank=True, default=b"")

    class DistanceCheck(models.TextChoices):
        CHECKED = "checked", "Distance checked against the POI's coordinates"
        NO_POI_COORDINATES = "no_poi", "Distance not checked: the POI has no coordinates"
        NO_CANDIDATE_COORDINATES = "no_candidates", "Distance not checked: no candidate has any"
        NO_GEODATA = "no_geodata", "Distance not checked: the wiki sent no coordinates (no GeoData)"

    distance_check = models.CharField(
        max_length=15, choices=DistanceCheck.choices, blank=True, default=""
    )
    # A curator's better query for this POI (a local-language name, a different wording) and
    # File: titles they know are right; later runs use them instead of the POI's name, still in
    # one API request. `searched_for` is what the last ranking actually sent.
    search_query = models.CharField(max_length=300, blank=True, default="")
    file_titles = models.JSONField(default=list, blank=True)
    searched_for = models.CharField(max_length=500, blank=True, default="")
    # A job claims the POI before working on it, so two jobs never rank it at once; a claim
    # older than the task timeout is stale (its worker died) and may be taken over.
    claimed_by = models.CharField(max_length=64, blank=True, default="")
    claimed_at = models.DateTimeField(null=True, blank=True)
    ranked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.poi} ({self.status})"

    @property
    def uses_fallback(self) -> bool:
        return self.image_origin == self.Origin.FALLBACK


class Candidate(models.Model):
    poi = models.ForeignKey(PointOfInterest, on_delete=models.CASCADE, related_name="candidates")
    search_rank = models.PositiveSmallIntegerField(help_text="Commons search rank, 1 = best.")
    title = models.CharField(max_length=500)
    description_url = models.URLField(max_length=1000, blank=True, default="")
    image_url = models.URLField(max_length=1000)
    thumb_url = models.URLField(max_length=1000, blank=True, default="")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    mime = models.CharField(max_length=50, blank=True, default="")
    sha1 = models.CharField(max_length=40, blank=True, default="")
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    distance_km = models.FloatField(null=True, blank=True)
    eligible = models.BooleanField(default=True)
    ineligible_reason = models.CharField(max_length=200, blank=True, default="")
    # What the search request said about it (visible categories) and what the pipeline made
    # of it: why it counts as this place's photo and, for a damaged near-duplicate, why it
    # ranks below its better copy.
    categories = models.JSONField(default=list, blank=True)
    relevance = models.CharField(max_length=300, blank=True, default="")
    # Scene features of the scored rendition (`scoring.scenes`): the same-scene test compares
    # these, within the POI's batch and against the city's stored photos.
    scene = models.BinaryField(blank=True, default=b"")
    damage = models.CharField(max_length=200, blank=True, default="")
    score = models.FloatField(null=True, blank=True)
    score_std = models.FloatField(null=True, blank=True)
    # The score the winner choice uses (the model's, minus penalties such as a blurred copy's):
    # "below threshold" marks compare this one.
    rank_score = models.FloatField(null=True, blank=True)
    model_name = models.CharField(max_length=20, blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")
    is_winner = models.BooleanField(default=False)
    fetched_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["poi", F("score").desc(nulls_last=True), "search_rank"]
        constraints = [
            models.UniqueConstraint(fields=["poi", "image_url"], name="unique_candidate_per_poi")
        ]

    def __str__(self) -> str:
        return self.title


class ImageTrainingData(models.Model):
    class Label(models.TextChoices):
        GOOD = "good", "Good"
        BAD = "bad", "Bad"

    class Source(models.TextChoices):
        CURATOR = "curator", "Curator"
        BOOTSTRAP = "bootstrap", "Bootstrap"

    poi = models.ForeignKey(
        PointOfInterest, on_delete=models.CASCADE, related_name="training_labels"
    )
    # A Commons URL, or the media URL of the POI's current (curated) image.
    image_url = models.CharField(max_length=1000)
    thumbnail_url = models.CharField(max_length=1000, blank=True, default="")
    label = models.CharField(max_length=4, choices=Label.choices)
    aesthetic_score = models.FloatField(null=True, blank=True)
    # The model that gave `aesthetic_score`: calibration works per model.
    model_name = models.CharField(max_length=20, blank=True, default="")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.CURATOR)
    labelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        verbose_name = "image training label"
        constraints = [
            models.UniqueConstraint(fields=["poi", "image_url"], name="one_label_per_poi_image")
        ]

    def __str__(self) -> str:
        return f"{self.poi}: {self.label}"


class RateLimitBucket(models.Model):
    """A token bucket shared by all processes.

    Times are Unix epoch seconds on the DATABASE's clock (`dbclock.epoch()`), never a
    worker host's, so hosts with skewed clocks still agree on refills and blocks.
    """

    name = models.CharField(max_length=50, primary_key=True)
    tokens = models.FloatField(default=0)
    refilled_at = models.FloatField(default=0)
    blocked_until = models.FloatField(default=0, help_text="Set from a 429's Retry-After.")

    def __str__(self) -> str:
        return self.name


class RateLimitSlot(models.Model):
    """One of a bucket's concurrent-request slots, leased until `expires_at` (database clock).

    The lease is short and renewed by its holder's heartbeat while the request is in flight,
    so a killed worker's slot frees itself within seconds and a slow live one keeps it.
    """

    bucket = models.CharField(max_length=50)
    index = models.PositiveSmallIntegerField()
    holder = models.CharField(max_length=100, blank=True, default="")
    expires_at = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["bucket", "index"], name="unique_slot_per_bucket")
        ]

    def __str__(self) -> str:
        return f"{self.bucket}[{self.index}]"


class RateLimitTicket(models.Model):
    """A worker waiting for one of a bucket's slots: waiters are served in arrival order (id).

    Like a slot, a ticket is a lease renewed by its waiter's heartbeat, so the ticket of a
    waiter that died stops holding up the queue within seconds.
    """

    bucket = models.CharField(max_length=50)
    holder = models.CharField(max_length=100)
    expires_at = models.FloatField(help_text="Database-clock epoch seconds.")

    class Meta:
        indexes = [models.Index(fields=["bucket", "expires_at"], name="ratelimit_ticket_live")]

    def __str__(self) -> str:
        return f"{self.bucket} ticket {self.pk}"


class AdoptedThreshold(models.Model):
    """A threshold a curator adopted from the calibration panel; the latest per model wins.

    Kept as history (who, when, from how many labels) rather than one mutable row, so a bad
    calibration can be traced and the previous value is one click away in the admin.
    """

    model_name = models.CharField(max_length=20)
    threshold = models.FloatField()
    good_count = models.PositiveIntegerField(default=0)
    bad_count = models.PositiveIntegerField(default=0)
    accuracy = models.FloatField(null=True, blank=True, help_text="Balanced accuracy, 0-1.")
    adopted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    adopted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-adopted_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.model_name}: {self.threshold:.2f}"

    @classmethod
    def current(cls, model: str | None = None) -> float:
        """The threshold the next runs use: the latest one adopted for the model (default:
        IMAGE_RANKING_MODEL), else IMAGE_RANKING_THRESHOLD."""
        adopted = (
            cls.objects.filter(model_name=model or settings.IMAGE_RANKING_MODEL)
            .values_list("threshold", flat=True)
            .first()
        )
        return float(adopted) if adopted is not None else float(settings.IMAGE_RANKING_THRESHOLD)


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
