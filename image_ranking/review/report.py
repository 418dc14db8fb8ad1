"""The coverage report (staff only, /image-ranking/report/): how far a city or list is, at a
glance and as a table. POIs with a photo by origin, flags by reason, the score histogram per
model, labels, and the runs over time. Each chart is one aggregate query; origins and flags
are the dashboard's own filter counts (`review.counts`), so its numbers are the dashboard's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django import forms
from django.core.cache import cache
from django.db.models import Count, F, FloatField, Q
from django.db.models.functions import Cast, Floor
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from cities.models import City, PoiList
from image_ranking.models import Candidate, ImageTrainingData, RankingRun, RankingRunItem
from image_ranking.review import counts, facets
from image_ranking.review.access import staff_only
from image_ranking.review.answers import bad_request
from image_ranking.review.facets import pois_in_lists

HISTOGRAM_BIN = 0.5
RUNS_SHOWN = 30


class ReportForm(forms.Form):
    city = forms.IntegerField(required=False, min_value=1)
    list = forms.IntegerField(required=False, min_value=1)


@dataclass
class Bar:
    label: str
    value: int
    css: str = ""

    def width(self, top: int) -> float:
        """The bar's length in the chart's 0-300 units."""
        return round(300 * self.value / top, 1) if top else 0.0


ORIGIN_CSS = {value: f"origin-{value}" for value in facets.ORIGINS}
ORIGIN_NAMES = {
    "curated": "Curated (there before ranking)",
    "pipeline": "Found by the pipeline",
    "curator": "Chosen by a curator",
    "fallback": "Category fallback (still needs a photo)",
    "none": "No image",
}


def photo_origins(found: dict) -> list[Bar]:
    """POIs by where their photo comes from: the dashboard's Image origin counts (the real ones
    add up to its "with image", fallback and none to its "missing image")."""
    return [Bar(ORIGIN_NAMES[key], found["origin"][key], ORIGIN_CSS[key]) for key in ORIGIN_NAMES]


def flag_reasons(found: dict) -> list[Bar]:
    """Flagged POIs by reason: the dashboard's Flag counts, most first."""
    reasons = sorted(found["flag"].items(), key=lambda item: (-item[1], item[0]))
    return [Bar(facets.flag_label(reason or "other"), n, "flag") for reason, n in reasons if n]


def score_histograms(pois) -> dict[str, list[Bar]]:
    """Scored candidates of the POIs per model, in bins of HISTOGRAM_BIN (one query)."""
    rows = (
        Candidate.objects.filter(poi__in=pois.values("pk"), score__isnull=False)
        .annotate(bin=Floor(Cast(F("score"), FloatField()) / HISTOGRAM_BIN))
        .values("model_name", "bin")
        .annotate(n=Count("pk"))
        .order_by("model_name", "bin")
    )
    found: dict[str, dict[int, int]] = {}
    for row in rows:
        found.setdefault(row["model_name"] or "?", {})[int(row["bin"])] = row["n"]
    top_bin = int(10 / HISTOGRAM_BIN)
    return {
        model: [Bar(f"{b * HISTOGRAM_BIN:.1f}", bins.get(b, 0), "score") for b in range(0, top_bin)]
        for model, bins in found.items()
    }


def label_counts(pois, scoped: bool) -> list[Bar]:
    """Labels by kind and by who gave them (one query); all of them is the dashboard's
    "labels"."""
    rows = ImageTrainingData.objects.all()
    if scoped:
        rows = rows.filter(poi__in=pois.values("pk"))
    row = rows.aggregate(
        good_curator=Count("pk", filter=Q(label="good", source="curator")),
        bad_curator=Count("pk", filter=Q(label="bad", source="curator")),
        good_auto=Count("pk", filter=Q(label="good", source="bootstrap")),
        bad_auto=Count("pk", filter=Q(label="bad", source="bootstrap")),
    )
    return [
        Bar("Good, by a curator", row["good_curator"], "good"),
        Bar("Bad, by a curator", row["bad_curator"], "bad"),
        Bar("Good, bootstrap", row["good_auto"], "good auto"),
        Bar("Bad, bootstrap", row["bad_auto"], "bad auto"),
    ]


@dataclass
class RunRow:
    run: RankingRun
    total: int
    updated: int
    ranked: int
    flagged: int
    failed: int
    cancelled: int

    @property
    def done(self) -> int:
        return self.updated + self.ranked + self.flagged + self.failed

    @property
    def seconds(self) -> float | None:
        run = self.run
        if run.started_at and run.finished_at:
            return max((run.finished_at - run.started_at).total_seconds(), 0.0)
        return None

    @property
    def duration(self) -> str:
        s = self.seconds
        if s is None:
            return "going" if self.run.is_active else "—"
        return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"

    @property
    def per_hour(self) -> str:
        s = self.seconds
        return f"{self.done * 3600 / s:.0f}" if s and self.done else "—"


def runs_over_time(city_id: int | None) -> list[RunRow]:
    """The last batch runs (of the city), oldest first, with their outcomes (one query)."""
    out = RankingRunItem.Outcome
    runs = RankingRun.objects.filter(kind=RankingRun.Kind.BATCH)
    if city_id:
        runs = runs.filter(Q(city_id=city_id) | Q(city__isnull=True))
    runs = runs.annotate(
        n_total=Count("items"),
        **{
            f"n_{o}": Count("items", filter=Q(items__outcome=o))
            for o in (out.UPDATED, out.RANKED, out.FLAGGED, out.FAILED, out.CANCELLED)
        },
    ).order_by("-created_at", "-pk")[:RUNS_SHOWN]
    rows = [
        RunRow(r, r.n_total, r.n_updated, r.n_ranked, r.n_flagged, r.n_failed, r.n_cancelled)
        for r in runs
    ]
    return rows[::-1]


def figures(city_id: int | None, list_id: int | None) -> tuple:
    """The report's numbers: origins and flags are the dashboard's filter counts
    (`counts.facet_counts`); labels, the score histogram (it reads every scored candidate:
    1.5 s at 1,000,000 on SQLite) and the runs one aggregate query each, kept per process
    until the dashboard's data stamp changes, like its counts, and at most `COUNTS_TTL`."""
    both = counts.stamps()
    stamp = both[0]
    found = counts.facet_counts(city_id, list_id, both, only=("origin", "flag"))
    key = "ir-report-" + hashlib.sha256(repr((city_id, list_id, stamp)).encode()).hexdigest()
    rest = cache.get(key)
    if rest is None:
        pois = pois_in_lists(city_id, list_id)
        rest = (
            label_counts(pois, bool(city_id or list_id)),
            score_histograms(pois),
            runs_over_time(city_id),
        )
        cache.set(key, rest, counts.COUNTS_TTL)
    return (photo_origins(found), flag_reasons(found), *rest)


@staff_only
@require_GET
def coverage_report(request: HttpRequest) -> HttpResponse:
    form = ReportForm(request.GET)
    if not form.is_valid():
        return bad_request(form)
    city_id, list_id = form.cleaned_data["city"], form.cleaned_data["list"]
    origins, flags, labels, histograms, runs = figures(city_id, list_id)
    context = {
        "cities": City.objects.only("pk", "name").order_by("name"),
        "lists": PoiList.objects.filter(city_id=city_id).order_by("title") if city_id else [],
        "city_id": city_id,
        "list_id": list_id,
        "total": sum(bar.value for bar in origins),
        "charts": [
            ("POIs by photo origin", "origins", origins),
            ("Flags by reason", "flags", flags),
            ("Labels", "labels", labels),
        ],
        "histograms": histograms,
        "runs": runs,
        "run_top": max((r.total for r in runs), default=0),
    }
    for _, _, bars in context["charts"]:
        top = max((bar.value for bar in bars), default=0)
        for bar in bars:
            bar.length = bar.width(top)
    for bars in histograms.values():
        top = max((bar.value for bar in bars), default=0)
        for i, bar in enumerate(bars):
            bar.length = round(110 * bar.value / top, 1) if top else 0.0
            bar.x = i * 15
            bar.y = 120 - bar.length
    for row in runs:
        row.segments, x = [], 0.0
        for css, value in (("updated", row.updated), ("ranked", row.ranked),
                           ("flagged", row.flagged), ("failed", row.failed),
                           ("cancelled", row.cancelled)):  # fmt: skip
            width = round(300 * value / context["run_top"], 1) if context["run_top"] else 0
            if value:
                row.segments.append({"css": css, "value": value, "x": x, "width": width})
            x += width
    return render(request, "image_ranking/report.html", context)
