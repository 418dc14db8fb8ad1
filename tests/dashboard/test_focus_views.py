"""The focused review's facts of an image (fetched when it is opened, never carried by the
grid's tiles) and the bulk "this one good, the others bad" endpoint: staff only, POST only,
CSRF enforced, GET changes nothing, bad ids are 404, and one undo takes its labels back."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from image_ranking.models import Candidate, ImageTrainingData
from image_ranking.review import undo
from tests.dashboard.factories import make_pois

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
DASH = reverse("image_ranking:dashboard")


def only_url(candidate: Candidate) -> str:
    return reverse("image_ranking:good_others_bad", args=[candidate.pk])


def rows() -> dict[str, str]:
    return dict(ImageTrainingData.objects.values_list("image_url", "label"))


def focus_details(client, tile_id: str) -> dict:
    """What the focused review shows of an image: fetched when it is opened, never carried by
    the grid's tiles (a page of 20 POIs has about 220)."""
    key = tile_id.removeprefix("t-")
    if key.startswith("p"):
        response = client.get(FOCUS, {"poi": key[1:]})
        assert response.status_code == 200, tile_id
        return response.context["current_details"]
    poi_id = Candidate.objects.get(pk=key[1:]).poi_id
    response = client.get(FOCUS, {"poi": poi_id, "img": key})
    assert response.status_code == 200, tile_id
    assert response.context["image_key"] == key
    return response.context["details"]


FOCUS = reverse("image_ranking:focus")


# --- The focused review's facts ----------------------------------------------------------------


def test_each_tile_carries_its_focus_details(staff_client):
    _, _, pois = make_pois(2, 3, image_every=0, flag_every=0)
    cand = Candidate.objects.filter(poi=pois[0], search_rank=1).get()
    Candidate.objects.filter(pk=cand.pk).update(
        size=2_400_000,
        description_url="https://commons.wikimedia.org/wiki/File:X.jpg",
        damage="dark copy of File:X.jpg",
        relevance="its title names “sight”",
        rank_score=3.1,
    )
    data = focus_details(staff_client, f"t-c{cand.pk}")
    assert data["title"] == cand.title
    assert data["resolution"] == "4000\u00d73000" and data["mime"] == "image/jpeg"
    assert data["size"].replace("\xa0", " ") == "2.3 MB"
    assert data["rank"] == 1 and data["distance"] == "0.3 km"
    assert data["score"].startswith(f"{cand.score:.2f} ± 1.40 (nima), ranked 3.10")
    assert data["commons"] == "https://commons.wikimedia.org/wiki/File:X.jpg"
    # The 1280 px rendition of the Commons thumbnail, not the 4000 px original.
    assert "/1280px-" in data["src"] and data["src"].startswith("https://upload.wikimedia.org/")
    texts = [r["text"] for r in data["reasons"]]
    assert "Dark copy of File:X.jpg" in texts and "Its title names “sight”" in texts
    assert "Below threshold: 3.10 < 4.50" in texts  # the score the winner choice used


def test_ineligible_reason_and_unsafe_links_in_the_focus_details(staff_client):
    _, _, pois = make_pois(1, 3, image_every=0, flag_every=0)
    far = Candidate.objects.get(poi=pois[0], search_rank=3)  # ineligible in the factory
    near = Candidate.objects.get(poi=pois[0], search_rank=1)
    Candidate.objects.filter(pk=far.pk).update(
        description_url="//evil.example/x", image_url="//evil.example/x.jpg"
    )
    Candidate.objects.filter(pk=near.pk).update(description_url="javascript:alert(1)")
    far_data = focus_details(staff_client, f"t-c{far.pk}")
    assert far_data["commons"] == ""  # a protocol-relative URL is no Commons link
    assert {"kind": "ineligible", "text": "Not eligible: 12.5 km from the POI (max 5 km)"} in (
        far_data["reasons"]
    )
    near_data = focus_details(staff_client, f"t-c{near.pk}")
    # A description URL that is no http(s) link gives way to the original on Commons.
    assert near_data["commons"] == near.image_url


def test_the_current_image_shows_the_stored_file_and_its_candidate(staff_client):
    _, _, pois = make_pois(1, 3, image_every=1, flag_every=0)
    poi = pois[0]
    data = focus_details(staff_client, f"t-p{poi.pk}")
    assert data["kind"] == "current"
    assert data["src"].startswith(f"/media/{poi.image_file.name}?v=")
    winner = Candidate.objects.get(poi=poi, is_winner=True)
    assert data["title"] == winner.title  # stored from the pipeline's winner
    assert "Stored from this Commons candidate" in [r["text"] for r in data["reasons"]]


# --- "This one good, the others bad" ----------------------------------------------------------


def test_only_this_labels_one_good_and_the_others_bad_and_undoes_in_one_step(staff_client):
    _, _, pois = make_pois(2, 3, image_every=0, flag_every=0)
    first, second, third = Candidate.objects.filter(poi=pois[0]).order_by("search_rank")
    other_poi = Candidate.objects.filter(poi=pois[1]).first()

    response = staff_client.post(only_url(second), **HTMX)

    assert response.status_code == 200
    assert response["HX-Retarget"] == f"#poi-{pois[0].pk}"
    body = response.content.decode()
    assert f'id="t-c{second.pk}"' in body and 'id="calibration"' in body  # card + panel
    assert rows() == {second.image_url: "good", first.image_url: "bad", third.image_url: "bad"}
    assert other_poi.image_url not in rows()
    row = ImageTrainingData.objects.get(image_url=first.image_url)
    assert row.aesthetic_score == first.score and row.source == "curator"
    assert undo.undo_depth(staff_client.session) == 1  # one action

    staff_client.post(reverse("image_ranking:undo"), **HTMX)
    assert rows() == {}


def test_only_this_never_labels_the_image_in_use_bad(staff_client):
    _, _, pois = make_pois(1, 3, image_every=1, flag_every=0)
    winner = Candidate.objects.get(poi=pois[0], is_winner=True)
    other = Candidate.objects.filter(poi=pois[0], is_winner=False).first()
    staff_client.post(only_url(other), **HTMX)
    assert winner.image_url not in rows()
    assert rows()[other.image_url] == "good"


def test_only_this_relabels_an_earlier_good_label_bad_and_undo_restores_it(staff_client):
    _, _, pois = make_pois(1, 3, image_every=0, flag_every=0)
    first, second, _ = Candidate.objects.filter(poi=pois[0]).order_by("search_rank")
    staff_client.post(reverse("image_ranking:label_candidate", args=[first.pk]), {"label": "good"})
    staff_client.post(only_url(second), **HTMX)
    assert rows()[first.image_url] == "bad"
    staff_client.post(reverse("image_ranking:undo"), **HTMX)  # one step for the bulk action
    assert rows() == {first.image_url: "good"}


def test_only_this_without_javascript_redirects_back_with_the_filters(staff_client):
    city, _, pois = make_pois(1, 3, image_every=0, flag_every=0)
    cand = Candidate.objects.filter(poi=pois[0]).first()
    response = staff_client.post(only_url(cand), {"return_to": f"city={city.pk}&status=missing"})
    assert response.status_code == 302
    assert response["Location"] == f"{DASH}?city={city.pk}&status=missing#poi-{pois[0].pk}"
    assert len(rows()) == 3


def test_only_this_is_staff_only_post_only_csrf_checked_and_404_for_a_bad_id(
    client, plain_client, csrf_client, staff_client
):
    _, _, pois = make_pois(1, 3, image_every=0, flag_every=0)
    cand = Candidate.objects.filter(poi=pois[0]).first()
    url = only_url(cand)
    for who in (client, plain_client):
        response = who.post(url, **HTMX)
        assert response.status_code == 302 and "/image-ranking/login/" in response["Location"]
    assert csrf_client.post(url, **HTMX).status_code == 403
    assert staff_client.get(url).status_code == 405  # GET changes nothing
    assert (
        staff_client.post(reverse("image_ranking:good_others_bad", args=[987654])).status_code
        == 404
    )
    assert not ImageTrainingData.objects.exists()
    assert undo.undo_depth(staff_client.session) == 0


def test_the_tiles_offer_only_this_when_the_poi_has_other_candidates(staff_client):
    _, _, pois = make_pois(2, 1, image_every=0, flag_every=0)
    Candidate.objects.create(
        poi=pois[1],
        search_rank=2,
        title="File:B.jpg",
        image_url="https://upload.wikimedia.org/b.jpg",
    )
    page = staff_client.get(DASH).content.decode()

    def acts(cand):  # what the action bar offers on its tile: o = "Only this"
        return re.search(rf'id="t-c{cand.pk}"[^>]*data-acts="([a-z]*)"', page).group(1)

    alone = Candidate.objects.get(poi=pois[0])
    assert "o" not in acts(alone)
    for cand in Candidate.objects.filter(poi=pois[1]):
        assert "o" in acts(cand)


def test_the_current_image_shows_the_stored_files_size_not_the_originals(
    staff_client, settings, tmp_path
):
    """The focused review of the current image gives the stored file's size and type; its
    resolution is left to the browser (the Commons original was 4000x3000, the file is not)."""
    settings.MEDIA_ROOT = tmp_path
    _, _, pois = make_pois(2, 3, image_every=1, flag_every=0)
    stored, gone = pois
    path = tmp_path / stored.image_file.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8" + b"\0" * 52_000)  # 52 KB
    Candidate.objects.filter(poi=stored, is_winner=True).update(size=2_400_000)
    data = focus_details(staff_client, f"t-p{stored.pk}")
    assert data["size"].replace("\xa0", " ") == "50.8 KB"
    assert data["mime"] == "image/jpeg" and data["resolution"] == ""
    # A stored file that went missing: the card still shows, without a size.
    assert focus_details(staff_client, f"t-p{gone.pk}")["size"] == ""
