"""Validation of every dashboard parameter: anything unexpected is a 400, never a guess."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from cities.models import PoiList
from image_ranking.models import Scope
from image_ranking.review import facets
from image_ranking.review.calibration import SCORE_MAX, model_choices
from image_ranking.review.ordering import SORTS
from image_ranking.review.selectors import DEFAULT_PER_PAGE, FACETS, PER_PAGE_CHOICES, Filters

LABEL_CHOICES = [("good", "Good"), ("bad", "Bad"), ("clear", "Clear")]


def _model_field() -> forms.ChoiceField:
    """A scoring model by name; empty = the configured one."""
    return forms.ChoiceField(required=False, choices=[("", "")] + [(m, m) for m in model_choices()])


SEARCH_MAX = 100  # characters of a name search; a longer one is shortened, and the page says so


class FilterForm(forms.Form):
    # Any length is taken (a pasted name, an old link) and shortened to SEARCH_MAX, never a 400.
    q = forms.CharField(required=False, max_length=2000, strip=True)
    city = forms.IntegerField(required=False, min_value=1)
    list = forms.IntegerField(required=False, min_value=1)
    status = forms.ChoiceField(required=False, choices=[("", "All"), *facets.STATUSES.items()])
    flag = forms.RegexField(required=False, regex=facets.FLAG_VALUE)
    score = forms.RegexField(required=False, regex=facets.SCORE_VALUE)
    label = forms.ChoiceField(required=False, choices=[("", "Any"), *facets.LABELS.items()])
    damage = forms.ChoiceField(required=False, choices=[("", "Any"), *facets.DAMAGE.items()])
    origin = forms.ChoiceField(required=False, choices=[("", "Any"), *facets.ORIGINS.items()])
    # The earlier "Unlabelled only" box: its links still work (label=unlabelled).
    unlabelled = forms.BooleanField(required=False)
    sort = forms.ChoiceField(
        required=False, choices=[(k, label) for k, (label, _) in SORTS.items()]
    )
    page = forms.IntegerField(required=False, min_value=1, max_value=10**6)
    per_page = forms.TypedChoiceField(
        required=False,
        coerce=int,
        choices=[(str(n), str(n)) for n in PER_PAGE_CHOICES],
        empty_value=DEFAULT_PER_PAGE,
    )
    model = _model_field()

    def clean_score(self) -> str:
        value = self.cleaned_data["score"]
        try:
            if value:
                facets.score_range(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        return value

    def clean(self):
        """A list of another city than the chosen one is dropped (the List choice only offers
        the chosen city's lists, and changing the city submits the old list along)."""
        data = super().clean()
        if data.get("unlabelled") and not data.get("label"):
            data["label"] = "unlabelled"
        city_id, list_id = data.get("city"), data.get("list")
        if city_id and list_id and not PoiList.objects.filter(pk=list_id, city_id=city_id).exists():
            data["list"] = None
        return data

    @property
    def search_clipped(self) -> bool:
        return len(self.cleaned_data.get("q") or "") > SEARCH_MAX

    def filters(self) -> Filters:
        data = self.cleaned_data
        return Filters(
            q=(data.get("q") or "")[:SEARCH_MAX].strip(),
            city_id=data.get("city"),
            list_id=data.get("list"),
            **{param: data.get(param) or "" for param in FACETS},
            sort=data.get("sort") or "",
            page=data.get("page") or 1,
            per_page=data.get("per_page") or DEFAULT_PER_PAGE,
            model=data.get("model") or "",
        )


def filters_from_return_to(value: str) -> Filters:
    """The filters a POST came from (its `return_to` query string); invalid parts dropped."""
    form = FilterForm(QueryDict(value.lstrip("?")[:2000]))
    if form.is_valid():
        return form.filters()
    clean = {k: v for k, v in form.cleaned_data.items() if k not in form.errors}
    form = FilterForm({k: v for k, v in clean.items() if v not in (None, "")})
    return form.filters() if form.is_valid() else Filters()


class LabelForm(forms.Form):
    label = forms.ChoiceField(choices=LABEL_CHOICES)

    def value(self) -> str | None:
        label = self.cleaned_data["label"]
        return None if label == "clear" else label


class RunForm(forms.Form):
    scope = forms.ChoiceField(choices=Scope.choices, initial=Scope.MISSING)
    city = forms.IntegerField(required=False, min_value=1)
    threshold = forms.FloatField(required=False, min_value=0.0, max_value=SCORE_MAX)
    replace_existing = forms.BooleanField(required=False)


class ThresholdForm(forms.Form):
    threshold = forms.FloatField(required=False, min_value=0.0, max_value=SCORE_MAX)
    model = _model_field()


class BootstrapForm(forms.Form):
    city = forms.IntegerField(required=False, min_value=1)
