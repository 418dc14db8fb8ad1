"""Export of exactly the current view: every image of every POI the grid's filters match (all
pages, in the grid's order), one row each, as CSV or JSON Lines, with the model's score and
the score the ranking used. Streamed POI batch by POI batch (a fixed number of queries per
batch), cells a spreadsheet would run as formulas escaped like the labels' export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, StreamingHttpResponse
from django.views.decorators.http import require_GET

from image_ranking.models import Candidate
from image_ranking.review import calibration, ordering, selectors, tables
from image_ranking.review.access import staff_only
from image_ranking.review.answers import bad_request
from image_ranking.review.cards import cards_of
from image_ranking.review.forms import FilterForm

BATCH = 500  # POIs read at once
FIELDS = [
    "poi_id",
    "poi_name",
    "city",
    "status",
    "flag",
    "image_origin",
    "candidate_id",
    "title",
    "image_url",
    "thumb_url",
    "model_name",
    "model_score",
    "ranked_score",
    "eligible",
    "ineligible_reason",
    "damage",
    "is_winner",
    "label",
    "label_source",
]


def view_rows(filters: selectors.Filters) -> Iterator[dict[str, Any]]:
    """The rows of the view's images, POI by POI in the grid's order, best candidate first."""
    ordered = selectors.matching(filters).order_by(*ordering.SORTS[filters.sort][1])
    ids = list(ordered.values_list("pk", flat=True))
    threshold = calibration.current_threshold()
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        cards = cards_of(batch, threshold)
        for poi_id in batch:
            card = cards.get(poi_id)
            if card is not None:
                yield from _card_rows(card)


def _card_rows(card) -> Iterator[dict[str, Any]]:
    ranking = card.ranking
    for tile in card.candidates:
        c: Candidate = tile.candidate
        yield {
            "poi_id": card.poi.pk,
            "poi_name": card.poi.name,
            "city": card.poi.city.name,
            "status": card.status,
            "flag": card.flag_reason,
            "image_origin": ranking.image_origin if ranking else "",
            "candidate_id": c.pk,
            "title": c.title,
            "image_url": c.image_url,
            "thumb_url": c.thumb_url,
            "model_name": c.model_name,
            "model_score": c.score,
            "ranked_score": tile.rank_score,
            "eligible": c.eligible,
            "ineligible_reason": c.ineligible_reason,
            "damage": c.damage,
            "is_winner": c.is_winner,
            "label": tile.label,
            "label_source": tile.label_source,
        }


@staff_only
@require_GET
def export_view(request: HttpRequest, fmt: str) -> StreamingHttpResponse:
    form = FilterForm(request.GET)
    if not form.is_valid():
        return bad_request(form)
    return tables.download(view_rows(form.filters()), FIELDS, fmt, "image-ranking-view")
