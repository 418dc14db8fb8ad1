"""Training data: curators' labels, and the thresholds they adopted from them."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from cities.models import PointOfInterest


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
