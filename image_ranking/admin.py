"""Admin for the image-ranking models: labels with filters, runs, rankings and candidates."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Q

from image_ranking.models import (
    FINAL_OUTCOMES,
    AdoptedThreshold,
    Candidate,
    ImageTrainingData,
    PoiRanking,
    RankingRun,
    RankingRunItem,
)


@admin.register(ImageTrainingData)
class ImageTrainingDataAdmin(admin.ModelAdmin):
    list_display = [
        "poi", "label", "aesthetic_score", "model_name", "source", "labelled_by", "updated_at",
    ]  # fmt: skip
    list_filter = ["label", "source", "model_name", "poi__city", "poi__category", "labelled_by"]
    search_fields = ["poi__name", "image_url"]
    list_select_related = ["poi__city", "labelled_by"]
    raw_id_fields = ["poi"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "updated_at"


class RankingRunItemInline(admin.TabularInline):
    model = RankingRunItem
    fields = ["poi", "outcome", "reason", "task_id", "started_at", "finished_at"]
    readonly_fields = fields
    raw_id_fields = ["poi"]
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(RankingRun)
class RankingRunAdmin(admin.ModelAdmin):
    list_display = [
        "pk", "kind", "scope", "city", "status", "total", "processed", "failed", "threshold",
        "created_by", "created_at",
    ]  # fmt: skip
    list_filter = ["status", "kind", "scope", "city"]
    list_select_related = ["city", "created_by"]
    readonly_fields = ["created_at", "started_at", "finished_at", "swept_at", "active_key"]
    inlines = [RankingRunItemInline]

    def get_queryset(self, request):
        final = Q(items__outcome__in=FINAL_OUTCOMES)
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_total=Count("items"),
                n_processed=Count("items", filter=final),
                n_failed=Count("items", filter=Q(items__outcome=RankingRunItem.Outcome.FAILED)),
            )
        )

    @admin.display(ordering="n_total", description="POIs")
    def total(self, run: RankingRun) -> int:
        return run.n_total

    @admin.display(ordering="n_processed")
    def processed(self, run: RankingRun) -> int:
        return run.n_processed

    @admin.display(ordering="n_failed")
    def failed(self, run: RankingRun) -> int:
        return run.n_failed


@admin.register(PoiRanking)
class PoiRankingAdmin(admin.ModelAdmin):
    list_display = ["poi", "status", "best_score", "image_origin", "reason", "ranked_at"]
    list_filter = ["status", "image_origin", "poi__city"]
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
