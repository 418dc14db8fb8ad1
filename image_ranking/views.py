"""Dashboard views: thin function views over image_ranking services and selectors."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from cities.models import PointOfInterest


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    in_lists = PointOfInterest.objects.filter(lists__isnull=False).distinct()
    context = {
        "pois_in_lists": in_lists.count(),
        "missing_images": in_lists.filter(image_file__isnull=True).count()
        + in_lists.filter(image_file="").count(),
    }
    return render(request, "image_ranking/image_ranking.html", context)
