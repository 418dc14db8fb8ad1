"""What a curator's clicks must never do: label the category fallback as a photo of its POI,
claim an undo took back more than it did, or give a POI the photo of another POI of its city."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from image_ranking.models import Candidate, ImageTrainingData, PoiRanking
from image_ranking.review import label_export, labels, undo
from tests.dashboard.factories import make_pois, make_usable_candidate
from tests.dashboard.test_views import snapshot

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
UNDO = reverse("image_ranking:undo")
Origin = PoiRanking.Origin


def tile_html(html: str, key: str) -> str:
    match = re.search(rf'<figure [^>]*id="t-{key}".*?</figure>', html, re.S)
    assert match, f"no tile t-{key}"
    return match.group(0)


def card(client, poi) -> str:
    response = client.get(reverse("image_ranking:poi_card", args=[poi.pk]))
    assert response.status_code == 200
    return response.content.decode()


# --- 1. The category fallback is no photo of the POI ----------------------------------------


@pytest.fixture
def fallback_poi(db):
    """A POI showing its category's fallback image, with 3 candidates."""
    _, _, (poi,) = make_pois(1, 3, image_every=1, flag_every=0)
    PoiRanking.objects.filter(poi=poi).update(
        image_origin=Origin.FALLBACK, status=PoiRanking.Status.FLAGGED
    )
    Candidate.objects.filter(poi=poi).update(is_winner=False)
    return poi


@pytest.mark.parametrize("label", ["good", "bad", "clear"])
def test_the_fallback_image_cannot_be_labelled(staff_client, fallback_poi, label):
    before = snapshot()
    url = reverse("image_ranking:label_current", args=[fallback_poi.pk])
    response = staff_client.post(url, {"label": label}, **HTMX)
    assert response.status_code == 409
    assert "category fallback image is not a photo of this POI" in response.text
    assert snapshot() == before
    assert undo.undo_depth(staff_client.session) == 0


def test_labelling_the_fallback_image_in_the_service_is_refused(fallback_poi):
    with pytest.raises(ValueError, match="fallback"):
        labels.label_current_image(fallback_poi, "good")
    assert not ImageTrainingData.objects.exists()


def test_a_real_current_image_can_still_be_labelled(staff_client, db):
    _, _, (poi,) = make_pois(1, 3, image_every=1, flag_every=0)
    url = reverse("image_ranking:label_current", args=[poi.pk])
    assert staff_client.post(url, {"label": "good"}, **HTMX).status_code == 200
    assert ImageTrainingData.objects.get(poi=poi).label == "good"


def test_the_fallback_refusal_is_staff_only_and_needs_csrf(plain_client, csrf_client, fallback_poi):
    before = snapshot()
    url = reverse("image_ranking:label_current", args=[fallback_poi.pk])
    response = plain_client.post(url, {"label": "good"}, **HTMX)
    assert response.status_code == 302 and "/image-ranking/login/" in response["Location"]
    assert csrf_client.post(url, {"label": "good"}, **HTMX).status_code == 403
    assert snapshot() == before


def acts(tile: str) -> str:
    """What the action bar offers on a tile (dashboard.js adds it): l label, u use, o only."""
    return re.search(r'data-acts="([a-z]*)"', tile).group(1)


def test_the_fallback_tile_has_no_label_buttons(staff_client, fallback_poi):
    html = card(staff_client, fallback_poi)
    tile = tile_html(html, f"p{fallback_poi.pk}")
    assert "Category fallback image" in tile
    assert 'data-acts=""' in tile  # the action bar offers no label on it
    # Its candidates keep theirs.
    first = Candidate.objects.filter(poi=fallback_poi).order_by("search_rank").first()
    assert acts(tile_html(html, f"c{first.pk}")).startswith("l")


def test_a_bootstrap_label_on_the_fallback_shows_no_clear_button(staff_client, fallback_poi):
    ImageTrainingData.objects.create(
        poi=fallback_poi,
        image_url=fallback_poi.image_file.url,
        label="good",
        source=ImageTrainingData.Source.BOOTSTRAP,
    )
    tile = tile_html(card(staff_client, fallback_poi), f"p{fallback_poi.pk}")
    assert 'data-key="clear"' not in tile and 'data-key="good"' not in tile


def test_the_export_leaves_out_labels_of_a_fallback_image(staff_client, fallback_poi):
    """A label made before fallbacks were refused is no training data of the POI."""
    ImageTrainingData.objects.create(
        poi=fallback_poi, image_url=fallback_poi.image_file.url, label="good", source="curator"
    )
    cand = Candidate.objects.filter(poi=fallback_poi).order_by("search_rank").first()
    ImageTrainingData.objects.create(
        poi=fallback_poi, image_url=cand.image_url, label="bad", source="curator"
    )
    rows = list(label_export.export_rows())
    assert [(r["image_url"], r["label"]) for r in rows] == [(cand.image_url, "bad")]
    assert all(r["image_origin"] != "fallback" for r in rows)
    jsonl = staff_client.get(reverse("image_ranking:export_jsonl"))
    exported = [json.loads(line) for line in b"".join(jsonl.streaming_content).splitlines()]
    assert [r["label"] for r in exported] == ["bad"]
    csv_text = b"".join(
        staff_client.get(reverse("image_ranking:export_csv")).streaming_content
    ).decode()
    assert "fallback" not in csv_text and fallback_poi.image_file.url not in csv_text


# --- 2. Undo after "Use this image" says what it did ------------------------------------------


@pytest.fixture
def usable(db, commons_server, media_root):
    """A POI without an image whose last candidate is a real file on the fake Commons."""
    return make_usable_candidate(commons_server)


def test_undo_after_use_this_image_says_the_image_stays(staff_client, usable):
    poi, cand = usable
    use = reverse("image_ranking:use_candidate", args=[cand.pk])
    assert staff_client.post(use, **HTMX).status_code == 200
    poi.refresh_from_db()
    stored = poi.image_file.name
    assert ImageTrainingData.objects.get(poi=poi, image_url=cand.image_url).label == "good"

    response = staff_client.post(UNDO, **HTMX)

    assert response.status_code == 200
    body = response.content.decode()
    assert f"Undone: the good label of “{cand.title}”." in body
    assert "The image stays: pick another with “Use this image”." in body
    assert "label removed" not in body
    assert not ImageTrainingData.objects.filter(poi=poi, image_url=cand.image_url).exists()
    poi.refresh_from_db()
    assert poi.image_file.name == stored  # what the message says: the image stays
    assert Candidate.objects.get(pk=cand.pk).is_winner
    assert PoiRanking.objects.get(poi=poi).image_origin == Origin.CURATOR
    assert undo.undo_depth(staff_client.session) == 0


def test_undo_after_use_this_image_puts_back_an_earlier_label(staff_client, usable):
    poi, cand = usable
    staff_client.post(
        reverse("image_ranking:label_candidate", args=[cand.pk]), {"label": "bad"}, **HTMX
    )
    staff_client.post(reverse("image_ranking:use_candidate", args=[cand.pk]), **HTMX)
    assert undo.undo_depth(staff_client.session) == 2

    body = staff_client.post(UNDO, **HTMX).content.decode()
    assert f"Undone: the good label of “{cand.title}” (its earlier bad label is back)." in body
    assert "The image stays" in body
    assert ImageTrainingData.objects.get(poi=poi, image_url=cand.image_url).label == "bad"
    # The next u takes back the label button's action, as before.
    body = staff_client.post(UNDO, **HTMX).content.decode()
    assert "Undone: label removed." in body
    assert not ImageTrainingData.objects.filter(poi=poi).exists()


def test_a_use_undo_entry_survives_the_session():
    change = labels.LabelChange(1, "https://x/File_X.jpg", None, labels.USE, "File:X.jpg")
    assert labels.LabelChange.from_session(change.to_session()) == change
    old = {"poi_id": 1, "image_url": "u", "previous": None}  # saved before `action` existed
    assert labels.LabelChange.from_session(old).action == ""


# --- 3. One photo, one place ------------------------------------------------------------------


@pytest.fixture
def two_pois(db):
    """Two POIs of Lisbon, both with a pipeline winner as their image."""
    _, _, (here, there) = make_pois(2, 3, image_every=1, flag_every=0)
    Candidate.objects.filter(poi=there, is_winner=True).update(sha1="a" * 40)
    PoiRanking.objects.filter(poi=there).update(image_sha1="a" * 40)
    return here, there


@pytest.fixture
def no_download(monkeypatch):
    """Records what would be stored (nothing is downloaded)."""
    from image_ranking.pipeline import choice

    calls = []
    monkeypatch.setattr(choice, "use_candidate", lambda c, **kw: calls.append(c.pk))
    return calls


def second_candidate(poi) -> Candidate:
    return Candidate.objects.filter(poi=poi).order_by("search_rank")[1]


def test_use_this_image_refuses_another_pois_photo(staff_client, two_pois, no_download):
    here, there = two_pois
    theirs = Candidate.objects.get(poi=there, is_winner=True)
    cand = second_candidate(here)
    Candidate.objects.filter(pk=cand.pk).update(sha1=theirs.sha1)
    before = snapshot()

    response = staff_client.post(reverse("image_ranking:use_candidate", args=[cand.pk]), **HTMX)

    assert response.status_code == 409
    assert f"already the photo of {there.name} (POI {there.pk})" in response.text
    assert snapshot() == before and no_download == []
    assert undo.undo_depth(staff_client.session) == 0


@pytest.mark.parametrize("origin", [Origin.FALLBACK, Origin.EXISTING])
def test_a_winner_that_is_not_the_other_pois_image_does_not_block(
    staff_client, two_pois, no_download, origin
):
    here, there = two_pois
    PoiRanking.objects.filter(poi=there).update(image_origin=origin)
    cand = second_candidate(here)
    Candidate.objects.filter(pk=cand.pk).update(sha1="a" * 40)
    response = staff_client.post(reverse("image_ranking:use_candidate", args=[cand.pk]), **HTMX)
    assert response.status_code == 200 and no_download == [cand.pk]


def test_the_same_file_in_another_city_does_not_block(staff_client, two_pois, no_download):
    here, _ = two_pois
    _, _, (rome,) = make_pois(1, 3, city_name="Rome", image_every=1, flag_every=0)
    Candidate.objects.filter(poi=rome, is_winner=True).update(sha1="b" * 40)
    PoiRanking.objects.filter(poi=rome).update(image_sha1="b" * 40)
    cand = second_candidate(here)
    Candidate.objects.filter(pk=cand.pk).update(sha1="b" * 40)
    response = staff_client.post(reverse("image_ranking:use_candidate", args=[cand.pk]), **HTMX)
    assert response.status_code == 200 and no_download == [cand.pk]


def test_the_shared_photo_refusal_is_staff_only_and_needs_csrf(
    plain_client, csrf_client, two_pois, no_download
):
    here, _ = two_pois
    cand = second_candidate(here)
    Candidate.objects.filter(pk=cand.pk).update(sha1="a" * 40)
    before = snapshot()
    url = reverse("image_ranking:use_candidate", args=[cand.pk])
    response = plain_client.post(url, **HTMX)
    assert response.status_code == 302 and "/image-ranking/login/" in response["Location"]
    assert csrf_client.post(url, **HTMX).status_code == 403
    assert snapshot() == before and no_download == []


def test_a_candidate_that_is_another_pois_photo_has_no_use_button(staff_client, two_pois):
    here, there = two_pois
    theirs = Candidate.objects.get(poi=there, is_winner=True)
    cand = second_candidate(here)
    reason = f"already the photo of {there.name} (POI {there.pk}) as {theirs.title}"
    Candidate.objects.filter(pk=cand.pk).update(eligible=False, ineligible_reason=reason)
    html = card(staff_client, here)
    tile = tile_html(html, f"c{cand.pk}")
    assert f"Not eligible: already the photo of {there.name} (POI {there.pk})" in tile
    assert "u" not in acts(tile)  # no "Use this image" on it
    assert "l" in acts(tile)  # it can still be labelled
    # A candidate too far away is not eligible either, yet a curator may still use it.
    far = Candidate.objects.get(poi=here, search_rank=3)
    assert not far.eligible and "km" in far.ineligible_reason
    assert "u" in acts(tile_html(html, f"c{far.pk}"))
