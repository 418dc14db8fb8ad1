"""POI cards are rendered by Jinja2 (review.rendering): text from Commons and from curators
is escaped everywhere a card is shown, and the forms of a card post with the token it carries."""

from __future__ import annotations

import html
import re

from django.urls import reverse

from image_ranking.models import Candidate, ImageTrainingData, PoiRanking
from tests.dashboard.factories import make_pois

DASH = reverse("image_ranking:dashboard")
HTMX = {"HTTP_HX_REQUEST": "true"}
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def _hostile_poi():
    _, _, (poi,) = make_pois(1, 2, image_every=0, flag_every=1)
    poi.name = f"Sight {HOSTILE}"
    poi.save()
    candidate = Candidate.objects.filter(poi=poi).order_by("search_rank").first()
    candidate.title = f"File:{HOSTILE}.jpg"
    candidate.relevance = f"names {HOSTILE}"
    candidate.save()
    ranking = PoiRanking.objects.get(poi=poi)
    ranking.search_query = f"query {HOSTILE}"
    ranking.reason = f"reason {HOSTILE}"
    ranking.save()
    ranking.validation.description = f"flag {HOSTILE}"
    ranking.validation.save()
    return poi, candidate


def _assert_escaped(text: str) -> None:
    assert "<script>" not in text
    assert "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_commons_and_curator_text_is_escaped_on_the_page_and_in_htmx_answers(staff_client, db):
    poi, candidate = _hostile_poi()
    page = staff_client.get(DASH).content.decode()
    _assert_escaped(page)
    assert "flag &#34;&gt;&lt;script&gt;" in page or "flag &quot;&gt;&lt;script&gt;" in page

    card = staff_client.get(reverse("image_ranking:poi_card", args=[poi.pk])).content.decode()
    _assert_escaped(card)

    label_url = reverse("image_ranking:label_candidate", args=[candidate.pk])
    tile = staff_client.post(label_url, {"label": "good"}, **HTMX).content.decode()
    _assert_escaped(tile)
    assert f'id="t-c{candidate.pk}"' in tile


def test_the_focused_review_shows_the_candidates_own_title_escaped(staff_client, db):
    poi, candidate = _hostile_poi()
    page = staff_client.get(
        reverse("image_ranking:focus"), {"poi": poi.pk, "img": f"c{candidate.pk}"}
    ).content.decode()
    _assert_escaped(page)
    title = re.search(r'<span data-focus="title">([^<]*)</span>', page).group(1)
    assert html.unescape(title) == candidate.title


def test_every_card_form_carries_a_token_the_server_accepts(csrf_client, db):
    make_pois(2, 2, image_every=0, flag_every=0)
    page = csrf_client.get(DASH).content.decode()
    tiles_form = (
        r'<form class="tiles-form"[^>]*>'
        r'<input type="hidden" name="csrfmiddlewaretoken" value="([^"]+)"'
    )
    tokens = re.findall(tiles_form, page)
    assert len(tokens) == 2  # one form per card, its fields once
    # The action bar's Bad button posts the card's form to the candidate's label URL.
    action = re.search(r'data-key="bad"[^>]*data-url="([^"]+)"', page).group(1)
    candidate = Candidate.objects.order_by("pk").first()
    url = action.replace("/0/", f"/{candidate.pk}/")
    response = csrf_client.post(url, {"label": "bad", "csrfmiddlewaretoken": tokens[0]}, **HTMX)
    assert response.status_code == 200
    assert ImageTrainingData.objects.get().label == "bad"
