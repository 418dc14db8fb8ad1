"""A ranking run and what happened to each of its POIs."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.db.models import Count

from cities.models import City, PointOfInterest


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
