"""The dashboard's filters on POIs, each a group of options with one condition per option:
status (the states of `RankablePoi.objects`), flag reason, best score, label, damage and image
origin. One definition each, used by the grid, its counts, the focused review's moves, the
export of the view and the coverage report, so a count is always the size of its filter.

A condition is a `Q` on a POI (joins through its ranking); the same `Q` filters the grid and,
inside `Count(filter=...)`, counts the option (`review.counts`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet

from image_ranking.models import Candidate, ImageTrainingData, PoiRanking, RankablePoi
from image_ranking.pipeline import flags

condition = RankablePoi.objects.condition
Origin = PoiRanking.Origin


def pois_in_lists(city_id: int | None = None, list_id: int | None = None) -> QuerySet:
    """The scope of every view and count: POIs in at least one list (of `list_id`), in the
    city."""
    return RankablePoi.objects.in_lists(list_id).in_city(city_id)


# --- Status (the header's counts) -----------------------------------------------------------

# status filter value -> (label, the RankablePoi queryset method defining it)
STATES = {
    "missing": ("Missing image", "missing"),
    "fallback": ("Fallback image", "uses_fallback"),
    "flagged": ("Flagged", "flagged"),
    "ranked": ("Scored", "ranked"),  # candidates fetched and scored at least once
    "has_image": ("Has image", "with_real_image"),
}
STATUSES = {value: label for value, (label, _) in STATES.items()}


def state(status: str) -> Q:
    return condition(STATES[status][1])


# --- Flag reason ----------------------------------------------------------------------------

FLAGS = {
    flags.NO_IMAGES: "No images",
    flags.BELOW_THRESHOLD: "Below threshold",
    flags.FETCH_FAILED: "Fetch failed",
    flags.INTERNAL_ERROR: "Internal error",
    flags.SHARED_PHOTO: "Another POI's photo",
}
FLAG_VALUE = re.compile(r"^[a-z_]{1,40}$")  # a reason an older version wrote is taken too


def flag_label(reason: str) -> str:
    return FLAGS.get(reason) or reason.replace("_", " ").capitalize()


def flag(reason: str) -> Q:
    return Q(ranking__validation__aggregate=reason)


# --- Best score -----------------------------------------------------------------------------
# A POI's best score is the best its eligible candidates ranked with (PoiRanking.best_score).
# The options are 1-wide bins, "4-5" = 4 <= score < 5 (the last bin takes 10 too); a link may
# name any range ("4.5-6") and "none" the POIs never scored.

SCORE_BINS = tuple(f"{lo}-{lo + 1}" for lo in range(10))
NO_SCORE = "none"
SCORE_VALUE = re.compile(r"^(none|\d{1,2}(\.\d{1,2})?-\d{1,2}(\.\d{1,2})?)$")
SCORE_TOP = 10.0


def score_range(value: str) -> tuple[float, float] | None:
    """(low, high) of a score option, None for "none"; ValueError when it is no range."""
    if value == NO_SCORE:
        return None
    if not SCORE_VALUE.match(value):
        raise ValueError(f"not a score range: {value!r}")
    low, high = (float(part) for part in value.split("-"))
    if not 0 <= low < high <= SCORE_TOP:
        raise ValueError(f"not a score range between 0 and {SCORE_TOP:g}: {value!r}")
    return low, high


def score_label(value: str) -> str:
    bounds = score_range(value)
    if bounds is None:
        return "Not scored"
    return f"{bounds[0]:g}\u2013{bounds[1]:g}"


def score(value: str) -> Q:
    bounds = score_range(value)
    if bounds is None:
        return Q(ranking__best_score__isnull=True)
    low, high = bounds
    top = "lte" if high == SCORE_TOP else "lt"
    return Q(ranking__best_score__gte=low, **{f"ranking__best_score__{top}": high})


# --- Label ----------------------------------------------------------------------------------

LABELS = {
    "good": "Has good",
    "bad": "Has bad",
    "unlabelled": "Unlabelled",
}


def _labelled(label: str) -> Exists:
    return Exists(ImageTrainingData.objects.filter(poi=OuterRef("pk"), label=label))


def open_candidates() -> Exists:
    """The POI has a scored candidate without a label (of that image, on that POI): what is
    left for curators to label."""
    labelled = ImageTrainingData.objects.filter(
        poi=OuterRef("poi"), image_url=OuterRef("image_url")
    )
    return Exists(
        Candidate.objects.filter(poi=OuterRef("pk"), score__isnull=False).exclude(Exists(labelled))
    )


def label(value: str) -> Q:
    return Q(open_candidates()) if value == "unlabelled" else Q(_labelled(value))


def unlabelled(pois: QuerySet) -> QuerySet:
    """`pois` with unlabelled candidates (the focused review's "next unlabelled")."""
    return pois.filter(label("unlabelled"))


# --- Damage ---------------------------------------------------------------------------------

DAMAGE = {"damaged": "Damaged copy", "none": "None"}


def damaged() -> Exists:
    """A candidate of the POI is a damaged copy (dark, blurred, cropped) of a better one."""
    return Exists(Candidate.objects.filter(poi=OuterRef("pk")).exclude(damage=""))


def damage(value: str) -> Q:
    return Q(damaged()) if value == "damaged" else ~Q(damaged())


# --- Image origin ---------------------------------------------------------------------------

ORIGINS = {
    "curated": "Curated",
    "pipeline": "Pipeline",
    "curator": "Curator's pick",
    "fallback": "Fallback",
    "none": "No image",
}
_REAL = condition("with_real_image")
_ORIGIN_CONDITIONS = {
    "curated": _REAL & (Q(ranking__isnull=True) | Q(ranking__image_origin=Origin.EXISTING)),
    "pipeline": _REAL & Q(ranking__image_origin=Origin.PIPELINE),
    "curator": _REAL & Q(ranking__image_origin=Origin.CURATOR),
    "fallback": condition("uses_fallback"),
    "none": condition("missing") & ~condition("uses_fallback"),
}


def origin(value: str) -> Q:
    """Where the POI's image comes from; the five options part every POI (the real ones add
    up to "Has image", fallback and none to "Missing image")."""
    return _ORIGIN_CONDITIONS[value]


# --- Every group ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """A filter of the grid: its URL parameter, its name, its options (value -> label) and
    the condition of a value."""

    param: str
    name: str
    options: dict[str, str]
    where: Callable[[str], Q]
    help: str = ""

    def condition(self, value: str) -> Q:
        return self.where(value)


GROUPS = (
    Group("status", "Status", STATUSES, state),
    Group("flag", "Flag", FLAGS, flag, "Why the POI is flagged for curators"),
    Group(
        "score",
        "Best score",
        {v: score_label(v) for v in (*SCORE_BINS, NO_SCORE)},
        score,
        "The best score its eligible candidates were ranked with",
    ),
    Group(
        "label",
        "Label",
        LABELS,
        label,
        "A good label, a bad label, or scored candidates nobody labelled yet",
    ),
    Group(
        "damage",
        "Damage",
        DAMAGE,
        damage,
        "A damaged copy (dark, blurred, cropped) of a better photo among its candidates",
    ),
    Group(
        "origin",
        "Origin",
        ORIGINS,
        origin,
        "Where its image comes from: curated before ranking, the pipeline's winner, a "
        "curator's pick, the category fallback, or none",
    ),
)
BY_PARAM = {group.param: group for group in GROUPS}
