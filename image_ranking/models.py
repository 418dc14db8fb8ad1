"""Models of the image-ranking feature.

- `RankingRun`: one "rank missing/all" request and its progress counters (the dashboard's bar).
- `PoiRanking`: the latest ranking state of one POI (status, winner, flag, job claim).
- `Candidate`: a Commons image found for a POI, with its score (dashboard + training data).
- `ImageTrainingData`: a curator's good/bad label of one image of one POI (the spec's model).
- `RateLimitBucket` / `RateLimitSlot`: the token bucket and the in-flight slots shared by every
  process through the database (Wikimedia's limits hold for the whole deployment).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F

from cities.models import City, PointOfInterest, Validation


class Scope(models.TextChoices):
    MISSING = "missing", "POIs without an image"
    ALL = "all", "All POIs in lists"


class RankingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.MISSING)
    city = models.ForeignKey(City, on_delete=models.SET_NULL, null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True, help_text="Empty: the setting.")
    replace_existing = models.BooleanField(default=False)
    model_name = models.CharField(max_length=20, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    flagged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.scope}, {self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in {self.Status.QUEUED, self.Status.RUNNING}

    def count(self, **increments: int) -> None:
        """Atomically add to the progress counters (workers update the same row)."""
        RankingRun.objects.filter(pk=self.pk).update(
            **{name: F(name) + value for name, value in increments.items()}
        )


class PoiRanking(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RANKED = "ranked", "Ranked (image kept)"
        UPDATED = "updated", "Image stored"
        FLAGGED = "flagged", "Flagged"
        FAILED = "failed", "Failed"

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
    uses_fallback = models.BooleanField(default=False)
    # A job claims the POI before working on it, so two jobs never rank it at once; a claim
    # older than the task timeout is stale (its worker died) and may be taken over.
    claimed_by = models.CharField(max_length=64, blank=True, default="")
    claimed_at = models.DateTimeField(null=True, blank=True)
    ranked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.poi} ({self.status})"


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
    score = models.FloatField(null=True, blank=True)
    score_std = models.FloatField(null=True, blank=True)
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
    """A token bucket shared by all processes; times are Unix epoch seconds."""

    name = models.CharField(max_length=50, primary_key=True)
    tokens = models.FloatField(default=0)
    refilled_at = models.FloatField(default=0)
    blocked_until = models.FloatField(default=0, help_text="Set from a 429's Retry-After.")

    def __str__(self) -> str:
        return self.name


class RateLimitSlot(models.Model):
    """One of a bucket's concurrent-request slots, leased until `expires_at`."""

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
