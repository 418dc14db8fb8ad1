"""One action on a selection of images across POIs: label them (one undo step for all),
re-rank their POIs, or give those without a photo their category fallback.

The grid selects tiles (`x`, shift-click); the selection bar posts their keys, `c<id>` for a
candidate and `p<id>` for a POI's current image. Images a re-rank replaced meanwhile are gone:
they are left out and the message says how many.
"""

from __future__ import annotations

import re

from django import forms
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import pluralize
from django.views.decorators.http import require_POST

from cities.models import PointOfInterest
from image_ranking.models import Candidate, RankablePoi, Scope
from image_ranking.pipeline.fallback import apply_category_fallback
from image_ranking.pipeline.storage import StorageError
from image_ranking.review import calibration, labels, undo
from image_ranking.review.access import staff_only
from image_ranking.review.answers import answer_cards, bad_request, error
from image_ranking.runs.service import RunAlreadyActive, start_run

MAX_SELECTED = 500
KEY = re.compile(r"^([cp])(\d{1,12})$")
LABEL_ACTIONS = {"good": "good", "bad": "bad", "clear": None}


class SelectionForm(forms.Form):
    action = forms.ChoiceField(
        choices=[(a, a) for a in ("good", "bad", "clear", "rerank", "fallback")]
    )

    def __init__(self, data):
        super().__init__(data)
        self.keys = data.getlist("sel")[: MAX_SELECTED + 1]

    def clean(self):
        data = super().clean()
        if not self.keys or len(self.keys) > MAX_SELECTED:
            raise forms.ValidationError(f"select 1 to {MAX_SELECTED} images")
        if not all(KEY.match(key) for key in self.keys):
            raise forms.ValidationError("bad image keys")
        data["candidates"] = [int(k[1:]) for k in self.keys if k[0] == "c"]
        data["pois"] = [int(k[1:]) for k in self.keys if k[0] == "p"]
        return data


def label_selection(selected: list[Candidate], currents: list[PointOfInterest], value, user):
    """Label every selected image (the current images only when they are photos of their POI,
    never a category fallback); returns the changes, oldest first."""
    changes = [labels.label_candidate(c, value, user=user) for c in selected]
    fallback = set(RankablePoi.objects.filter(pk__in=[p.pk for p in currents]).uses_fallback()
                   .values_list("pk", flat=True))  # fmt: skip
    for poi in currents:
        if poi.image_file and poi.pk not in fallback:
            changes.append(labels.label_current_image(poi, value, user=user))
    return changes


@staff_only
@require_POST
def act_on_selection(request: HttpRequest) -> HttpResponse:
    """POST only (CSRF like every form). With htmx: every changed card swapped in place, the
    counts and the status line; without, a redirect back with a message."""
    form = SelectionForm(request.POST)
    if not form.is_valid():
        return bad_request(form)
    action = form.cleaned_data["action"]
    selected = list(
        Candidate.objects.select_related("poi").filter(pk__in=form.cleaned_data["candidates"])
    )
    currents = list(PointOfInterest.objects.filter(pk__in=form.cleaned_data["pois"]))
    gone = len(form.keys) - len(selected) - len(currents)
    poi_ids = list(dict.fromkeys([c.poi_id for c in selected] + [p.pk for p in currents]))
    if not poi_ids:
        return error(request, "Those images are gone (a re-rank replaced them): nothing changed.")
    if action in LABEL_ACTIONS:
        value = LABEL_ACTIONS[action]
        changes = label_selection(selected, currents, value, request.user)
        undo.push_undo_group(request.session, changes)
        done = "labels cleared" if value is None else f"marked {value}"
        message = (
            f"{len(changes)} image{pluralize(len(changes))} of {len(poi_ids)} "
            f"POI{pluralize(len(poi_ids))} {done}; one undo takes them all back."
        )
    elif action == "rerank":
        in_lists = set(
            RankablePoi.objects.in_lists().filter(pk__in=poi_ids).values_list("pk", flat=True)
        )
        started, busy = 0, 0
        for poi_id in poi_ids:
            if poi_id not in in_lists:
                continue
            try:
                start_run(
                    scope=Scope.ALL,
                    poi_ids=[poi_id],
                    threshold=calibration.current_threshold(),
                    user=request.user,
                )
                started += 1
            except RunAlreadyActive:
                busy += 1
        message = f"Re-rank queued for {started} POI{pluralize(started)}."
        if busy:
            message += f" {busy} already being re-ranked."
    else:
        applied = 0
        for poi in PointOfInterest.objects.filter(pk__in=poi_ids):
            try:
                applied += bool(apply_category_fallback(poi))
            except StorageError:
                continue
        message = (
            f"Category fallback applied to {applied} of {len(poi_ids)} POIs "
            "(those without an image of their own)."
        )
    if gone:
        message += f" {gone} selected image{pluralize(gone)} had gone (re-ranked), left out."
    return answer_cards(request, poi_ids, message, labels_changed=action in LABEL_ACTIONS)
