"""A POI as image ranking knows it: its ranking state and its candidates."""

from __future__ import annotations

from django.db import models
from django.db.models import F

from cities.models import PointOfInterest, Validation
from image_ranking.models.runs import RankingRun


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

    class Meta:
        indexes = [
            # The dashboard's data stamp (the last ranking recorded) and its "Last ranked" and
            # "Best score" sorts: index look-ups and walks, not scans of every POI.
            models.Index(fields=["ranked_at", "poi"], name="ranking_ranked_at"),
            models.Index(fields=["best_score", "poi"], name="ranking_best_score"),
            models.Index(fields=["status", "poi"], name="ranking_status"),
        ]

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
