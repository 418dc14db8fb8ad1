"""Routes of the review dashboard at /image-ranking/."""

from django.urls import path

from image_ranking.review import (
    access,
    bulk,
    calibration_views,
    focus,
    image_views,
    label_views,
    report,
    run_views,
    selection,
    view_export,
    views,
)

app_name = "image_ranking"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("login/", access.staff_login, name="login"),
    path("poi/<int:poi_id>/", views.poi_card, name="poi_card"),
    path("poi/<int:poi_id>/label/", label_views.label_current, name="label_current"),
    path("poi/<int:poi_id>/rerank/", image_views.rerank_poi, name="rerank"),
    path("poi/<int:poi_id>/fallback/", image_views.apply_fallback, name="fallback"),
    path("poi/<int:poi_id>/query/", image_views.set_search_query, name="search_query"),
    path(
        "candidate/<int:candidate_id>/label/", label_views.label_candidate, name="label_candidate"
    ),
    path("candidate/<int:candidate_id>/use/", image_views.use_candidate, name="use_candidate"),
    path("candidate/<int:candidate_id>/only/", bulk.good_others_bad, name="good_others_bad"),
    path("filters/", views.filter_counts, name="filter_counts"),
    path("review/", focus.focused_review, name="focus"),
    path("report/", report.coverage_report, name="report"),
    path("selection/", selection.act_on_selection, name="selection"),
    path("labels/undo/", label_views.undo_label, name="undo"),
    path("labels/bootstrap/", calibration_views.bootstrap_labels, name="bootstrap"),
    path("labels/export.csv", label_views.export_labels, {"fmt": "csv"}, name="export_csv"),
    path("labels/export.jsonl", label_views.export_labels, {"fmt": "jsonl"}, name="export_jsonl"),
    path("view.csv", view_export.export_view, {"fmt": "csv"}, name="export_view_csv"),
    path("view.jsonl", view_export.export_view, {"fmt": "jsonl"}, name="export_view_jsonl"),
    path("runs/", run_views.start_ranking_run, name="start_run"),
    path("runs/<int:run_id>/", run_views.run_progress, name="run_progress"),
    path("runs/<int:run_id>/cancel/", run_views.cancel_ranking_run, name="cancel_run"),
    path("calibration/", calibration_views.calibration_panel, name="calibration"),
    path("calibration/adopt/", calibration_views.adopt_threshold, name="adopt_threshold"),
]
