"""Routes of the review dashboard (filled in by the dashboard issue)."""

from django.urls import path

from image_ranking import views

app_name = "image_ranking"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
