"""The city-guide domain, field for field as in the original city_wiki project.

One addition: `PointOfInterest.source_id`, the POI's id in the city export it came from, so
that re-importing an export updates POIs in place (names are not unique within a city).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import models

from cities.paths import city_image_relpath, poi_image_relpath

logger = logging.getLogger(__name__)


def poi_image_path(instance: PointOfInterest, filename: str) -> str:
    """Upload path of a POI image: `cities/images/pois/<city>/<poi>.<ext>`, never outside it."""
    return poi_image_relpath(instance.city.name, instance.name, filename)


def city_image_path(instance: City, filename: str) -> str:
    """Upload path of a city image: `cities/images/<city>.<ext>`."""
    return city_image_relpath(instance.name, filename)


class City(models.Model):
    name = models.CharField(max_length=200, unique=True)
    country = models.CharField(max_length=200, default="Unknown")
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    image_file = models.ImageField(upload_to=city_image_path, null=True, blank=True)
    about = models.TextField(blank=True, default="")
    wikivoyage_url = models.URLField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "cities"

    def __str__(self) -> str:
        return self.name


class District(models.Model):
    name = models.CharField(max_length=200)
    city = models.ForeignKey(City, on_delete=models.CASCADE, related_name="districts")
    parent_district = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="sub_districts"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        unique_together = [("name", "city")]
        ordering = ["city", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.city})"


class PointOfInterest(models.Model):
    class Category(models.TextChoices):
        SEE = "see", "See"
        EAT = "eat", "Eat"
        SLEEP = "sleep", "Sleep"
        SHOP = "shop", "Shop"
        DRINK = "drink", "Drink"
        PLAY = "play", "Play"

    city = models.ForeignKey(City, on_delete=models.CASCADE, related_name="points_of_interest")
    district = models.ForeignKey(
        District,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="points_of_interest",
    )
    name = models.CharField(max_length=200)
    category = models.CharField(max_length=20, choices=Category.choices)
    sub_category = models.CharField(max_length=100, blank=True, default="")
    description = models.TextField(blank=True, default="")
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    address = models.CharField(max_length=500, blank=True, default="")
    phone = models.CharField(max_length=100, blank=True, default="")
    website = models.URLField(max_length=500, blank=True, default="")
    hours = models.CharField(max_length=500, blank=True, default="")
    image_file = models.ImageField(upload_to=poi_image_path, max_length=300, null=True, blank=True)
    rank = models.IntegerField(default=0)
    osm_id = models.CharField(max_length=50, null=True, blank=True)  # noqa: DJ001 (original schema)
    source_id = models.BigIntegerField(
        null=True, blank=True, help_text="The POI's id in the city export it was imported from."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["category", "rank"]
        verbose_name = "point of interest"
        verbose_name_plural = "points of interest"
        constraints = [
            models.UniqueConstraint(
                fields=["city", "source_id"], name="unique_poi_source_id_per_city"
            )
        ]
        indexes = [
            # The review dashboard's order (city, name, pk): a page walks the index and stops.
            models.Index(fields=["city", "name", "id"], name="poi_city_name"),
            # The dashboard's data stamp: the last POI saved, one index look-up.
            models.Index(fields=["updated_at"], name="poi_updated_at"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.city})"

    def delete_image_file(self) -> None:
        """Clear the field and remove the file, unless another POI references the same file
        (an export may link one file to two POIs); a file already gone is fine."""
        if not self.image_file:
            return
        name = self.image_file.name
        shared = PointOfInterest.objects.filter(image_file=name).exclude(pk=self.pk).exists()
        try:
            if not shared:
                self.image_file.storage.delete(name)
        except FileNotFoundError:
            logger.info("Image %s of POI %s was already gone", name, self.pk)
        self.image_file = None
        self.save(update_fields=["image_file", "updated_at"])

    def get_image_url(self, base_url: str | None = None) -> str | None:
        if not self.image_file:
            return None
        url = self.image_file.url
        return f"{base_url.rstrip('/')}{url}" if base_url else url

    @property
    def image_url(self) -> str | None:
        return self.get_image_url()

    def to_dict(self, base_url: str | None = None) -> dict[str, Any]:
        """The POI as in a city export."""
        return {
            "id": self.source_id if self.source_id is not None else self.pk,
            "district": self.district.name if self.district_id else None,
            "name": self.name,
            "category": self.category,
            "sub_category": self.sub_category,
            "description": self.description,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "address": self.address,
            "phone": self.phone,
            "website": self.website,
            "hours": self.hours,
            "rank": self.rank,
            "osm_id": self.osm_id,
            "image_url": self.get_image_url(base_url),
        }


class PoiList(models.Model):
    title = models.CharField(max_length=200)
    city = models.ForeignKey(City, on_delete=models.CASCADE, related_name="poi_lists")
    pois = models.ManyToManyField(PointOfInterest, related_name="lists", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "POI list"

    def __str__(self) -> str:
        return f"{self.title} ({self.city})"


class Validation(models.Model):
    parent = models.ForeignKey(
        City, on_delete=models.SET_NULL, null=True, blank=True, related_name="validations"
    )
    context = models.CharField(max_length=50)
    aggregate = models.CharField(max_length=50, help_text="High-level error category.")
    specialized_aggregate = models.CharField(max_length=50, blank=True, default="")
    description = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["parent"]),
            models.Index(fields=["context", "aggregate"]),
        ]

    def __str__(self) -> str:
        return f"{self.context}/{self.aggregate}: {self.description[:60]}"
