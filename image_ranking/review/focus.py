"""The focused review's page (GET): see `review.focusing`."""

from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from image_ranking.models import Candidate
from image_ranking.review import counts, focusing, undo
from image_ranking.review.access import staff_only
from image_ranking.review.answers import bad_request
from image_ranking.review.forms import FilterForm


class FocusForm(FilterForm):
    poi = forms.IntegerField(min_value=1, max_value=10**12, required=False)
    img = forms.RegexField(regex=r"^[cp]\d{1,12}$", required=False)

    def clean(self):
        """A candidate's key names its POI: `?img=c12` alone is enough (the grid's links)."""
        data = super().clean()
        image = data.get("img") or ""
        if not data.get("poi") and image.startswith("c"):
            data["poi"] = (
                Candidate.objects.filter(pk=image[1:]).values_list("poi_id", flat=True).first()
            )
        if not data.get("poi") and "poi" not in self.errors:
            raise forms.ValidationError("which POI? (poi or img=c<id>)")
        return data


@staff_only
@require_GET
def focused_review(request: HttpRequest) -> HttpResponse:
    """The whole page, or (htmx: a key or a link inside it) only its panel."""
    form = FocusForm(request.GET)
    if not form.is_valid():
        return bad_request(form)
    focus = focusing.Focus(form.filters(), form.cleaned_data["poi"], form.cleaned_data["img"] or "")
    context = focusing.panel_context(focus)
    if context is None:
        return HttpResponse("No such POI.", status=404, content_type="text/plain")
    if request.htmx:
        return HttpResponse(focusing.panel_html(request, context))
    header = counts.counts(focus.filters.city_id, focus.filters.list_id)
    context.update(counts=header, undo_depth=undo.undo_depth(request.session))
    return render(request, "image_ranking/focus.html", context)
