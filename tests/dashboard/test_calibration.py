"""Calibration per model: labels record the model and score they were labelled against; the
chart, the suggestion and Adopt work per model, chosen in the panel and kept in the URL.
One threshold per run on the page: the one a ranking used on its card, the adopted one for
the next runs, each named as such; "below threshold" compares the score the winner choice
uses."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from image_ranking.models import AdoptedThreshold, Candidate, ImageTrainingData, PoiRanking
from image_ranking.review import calibration
from tests.dashboard.factories import make_pois

pytestmark = pytest.mark.django_db

DASH = reverse("image_ranking:dashboard")
HTMX = {"HTTP_HX_REQUEST": "true"}
ADOPT = reverse("image_ranking:adopt_threshold")


def labels(poi, model: str, good: list[float], bad: list[float]) -> None:
    for i, score in enumerate(good):
        ImageTrainingData.objects.create(
            poi=poi, image_url=f"{model}-g{i}", label="good", aesthetic_score=score,
            model_name=model,
        )  # fmt: skip
    for i, score in enumerate(bad):
        ImageTrainingData.objects.create(
            poi=poi, image_url=f"{model}-b{i}", label="bad", aesthetic_score=score,
            model_name=model,
        )  # fmt: skip


@pytest.fixture
def two_models(db, settings):
    settings.IMAGE_RANKING_MODEL = "nima"
    settings.IMAGE_RANKING_THRESHOLD = 4.5
    _, _, pois = make_pois(2, 3, image_every=0, flag_every=0)
    labels(pois[0], "nima", good=[5.5, 5.8, 6.1], bad=[3.0, 3.4, 3.8])
    labels(pois[0], "laion", good=[7.1, 7.4, 7.9], bad=[6.0, 6.2, 6.4])
    return pois


def test_each_model_has_its_own_chart_and_suggestion(two_models):
    nima, laion = calibration.calibrate("nima"), calibration.calibrate("laion")
    assert (nima.model, nima.good_count, nima.bad_count) == ("nima", 3, 3)
    assert (laion.model, laion.good_count, laion.bad_count) == ("laion", 3, 3)
    assert 3.8 < nima.suggested <= 5.5 and 6.4 < laion.suggested <= 7.1
    assert calibration.calibrate().model == "nima"  # the configured one by default


def test_the_panel_shows_the_model_from_the_url_and_adopt_stores_under_it(
    staff_client, staff, two_models
):
    page = staff_client.get(f"{DASH}?model=laion&status=missing")
    html = page.text
    assert page.context["calibration"].model == "laion"
    assert 'data-calibration-model="laion"' in html and '<option value="laion" selected>' in html
    assert 'name="return_to" value="status=missing&amp;model=laion"' in html  # kept in the URL
    suggested = page.context["calibration"].suggested
    response = staff_client.post(
        ADOPT, {"threshold": suggested, "model": "laion", "return_to": "model=laion"}, **HTMX
    )
    assert response.status_code == 200 and "next laion runs" in response.text
    assert 'data-calibration-model="laion"' in response.text
    assert 'id="current-threshold"' not in response.text  # the header is nima's: unchanged
    adopted = AdoptedThreshold.objects.get()
    assert (adopted.model_name, adopted.threshold, adopted.adopted_by) == (
        "laion", suggested, staff,
    )  # fmt: skip
    assert calibration.current_threshold("laion") == suggested
    assert calibration.current_threshold("nima") == 4.5  # the other model is untouched
    # Without JavaScript: back to the same page, the model kept.
    response = staff_client.post(ADOPT, {"model": "nima", "return_to": "model=laion"})
    assert response.status_code == 302 and response["Location"].endswith("?model=laion")
    assert calibration.current_threshold("nima") == calibration.calibrate("nima").suggested


def test_a_label_records_the_model_and_the_score_the_winner_choice_used(staff_client, db):
    _, _, (poi,) = make_pois(1, 2, image_every=0, flag_every=0)
    blurred = Candidate.objects.filter(poi=poi).order_by("search_rank").first()
    Candidate.objects.filter(pk=blurred.pk).update(rank_score=blurred.score - 1)
    url = reverse("image_ranking:label_candidate", args=[blurred.pk])
    staff_client.post(url, {"label": "bad"}, **HTMX)
    row = ImageTrainingData.objects.get()
    assert row.model_name == "nima" and row.aesthetic_score == pytest.approx(blurred.score - 1)
    row.delete()
    staff_client.post(url, {"label": "bad"}, **HTMX)
    staff_client.post(reverse("image_ranking:undo"), **HTMX)
    assert not ImageTrainingData.objects.exists()


def test_cards_name_the_threshold_their_ranking_used_and_mark_below_it_by_rank_score(
    staff_client, db
):
    AdoptedThreshold.objects.create(model_name="nima", threshold=5.5)
    _, _, (ranked, fresh) = make_pois(2, 2, image_every=0, flag_every=0)
    PoiRanking.objects.filter(poi=ranked).update(threshold=4.5)
    PoiRanking.objects.filter(poi=fresh).delete()
    top = Candidate.objects.filter(poi=ranked).order_by("search_rank").first()
    # Scored 6.8 by the model, ranked 4.0 as a blurred copy: below the ranking's 4.5.
    Candidate.objects.filter(pk=top.pk).update(score=6.8, rank_score=4.0)
    page = staff_client.get(DASH)
    html = page.text
    assert "threshold <b>5.50</b> for the next runs" in html  # the header: the adopted one
    card = html.split(f'id="poi-{ranked.pk}"')[1].split("</article>")[0]
    assert "ranked with threshold 4.50" in card
    classes = re.search(rf'<figure class="([^"]*)" id="t-c{top.pk}"', card).group(1)
    tile = card.split(f'id="t-c{top.pk}"')[1].split("</figure>")[0]
    assert "tile--below" in classes and "Below threshold" in tile and "→ 4.00" in tile
    other = html.split(f'id="poi-{fresh.pk}"')[1].split("</article>")[0]
    assert "threshold 5.50 for the next runs" in other  # never ranked: no threshold of its own
