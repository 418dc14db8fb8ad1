"""Admin for the image-ranking models: labels with filters, runs, rankings and candidates."""

from __future__ import annotations

from django.contrib import admin

from image_ranking.models import (
    AdoptedThreshold,
    Candidate,
    ImageTrainingData,
    PoiRanking,
    RankingRun,
)


@admin.register(ImageTrainingData)
class ImageTrainingDataAdmin(admin.ModelAdmin):
    list_display = ["poi", "label", "aesthetic_score", "source", "labelled_by", "updated_at"]
    list_filter = ["label", "source", "poi__city", "poi__category", "labelled_by"]
    search_fields = ["poi__name", "image_url"]
    list_select_related = ["poi__city", "labelled_by"]
    raw_id_fields = ["poi"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "updated_at"


@admin.register(RankingRun)
class RankingRunAdmin(admin.ModelAdmin):
    list_display = [
        "pk", "scope", "city", "status", "processed", "total", "updated", "flagged", "failed",
        "threshold", "created_by", "created_at",
    ]  # fmt: skip
    list_filter = ["status", "scope", "city"]
    list_select_related = ["city", "created_by"]
    readonly_fields = ["created_at", "started_at", "finished_at"]


@admin.register(PoiRanking)
class PoiRankingAdmin(admin.ModelAdmin):
    list_display = ["poi", "status", "best_score", "uses_fallback", "reason", "ranked_at"]
    list_filter = ["status", "uses_fallback", "poi__city"]
    search_fields = ["poi__name", "reason"]
    list_select_related = ["poi__city"]
    raw_id_fields = ["poi", "run", "validation"]


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = ["title", "poi", "search_rank", "score", "eligible", "is_winner", "model_name"]
    list_filter = ["is_winner", "eligible", "model_name", "poi__city"]
    search_fields = ["title", "poi__name", "sha1"]
    list_select_related = ["poi__city"]
    raw_id_fields = ["poi"]


@admin.register(AdoptedThreshold)
class AdoptedThresholdAdmin(admin.ModelAdmin):
    list_display = [
        "model_name",
        "threshold",
        "accuracy",
        "good_count",
        "bad_count",
        "adopted_by",
        "adopted_at",
    ]
    list_filter = ["model_name"]
