"""Admin for the city-guide domain: find POIs fast and see their images at a glance."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from cities.models import City, District, PoiList, PointOfInterest, Validation


@admin.register(City)
class CityAdmin(admin.ModelAdmin):
    list_display = ("name", "country", "latitude", "longitude", "updated_at")
    search_fields = ("name", "country")


@admin.register(District)
class DistrictAdmin(admin.ModelAdmin):
    list_display = ("name", "city", "parent_district")
    list_filter = ("city",)
    search_fields = ("name",)
    list_select_related = ("city", "parent_district")


@admin.register(PointOfInterest)
class PointOfInterestAdmin(admin.ModelAdmin):
    list_display = ("thumbnail", "name", "city", "category", "district", "rank", "has_image")
    list_display_links = ("thumbnail", "name")
    list_filter = ("city", "category", ("image_file", admin.EmptyFieldListFilter), "lists")
    search_fields = ("name", "address", "osm_id")
    list_select_related = ("city", "district")
    readonly_fields = ("image_preview", "source_id", "created_at", "updated_at")
    autocomplete_fields = ("district",)

    @admin.display(description="")
    def thumbnail(self, poi: PointOfInterest) -> str:
        if not poi.image_file:
            return "—"
        return format_html(
            '<img src="{}" alt="" style="height:40px;width:60px;object-fit:cover">',
            poi.image_file.url,
        )

    @admin.display(description="Image", boolean=True)
    def has_image(self, poi: PointOfInterest) -> bool:
        return bool(poi.image_file)

    @admin.display(description="Preview")
    def image_preview(self, poi: PointOfInterest) -> str:
        if not poi.image_file:
            return "No image"
        return format_html(
            '<img src="{}" alt="{}" style="max-width:400px;max-height:300px">',
            poi.image_file.url,
            poi.name,
        )


@admin.register(PoiList)
class PoiListAdmin(admin.ModelAdmin):
    list_display = ("title", "city", "poi_count", "updated_at")
    list_filter = ("city",)
    search_fields = ("title",)
    filter_horizontal = ("pois",)

    @admin.display(description="POIs")
    def poi_count(self, poi_list: PoiList) -> int:
        return poi_list.pois.count()


@admin.register(Validation)
class ValidationAdmin(admin.ModelAdmin):
    list_display = ("context", "aggregate", "specialized_aggregate", "parent", "created_at")
    list_filter = ("context", "aggregate", "parent")
    search_fields = ("description",)
    list_select_related = ("parent",)
