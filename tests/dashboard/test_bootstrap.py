"""Bootstrap labels as the owner meant them: only an image a curator chose is "good", never a
pipeline winner; the current image's own candidate is never "bad"; a file (same sha1) never
gets contradicting automatic labels; a curator's labels stay, and bootstrap labels look
different from a curator's on the dashboard."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.urls import reverse

from image_ranking.models import Candidate, ImageTrainingData, PoiRanking
from image_ranking.review.bootstrap import bootstrap, bootstrap_pois
from tests.dashboard.factories import make_pois

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
Origin = PoiRanking.Origin


def labels_of(poi) -> dict[str, tuple[str, str]]:
    return {r.image_url: (r.label, r.source) for r in ImageTrainingData.objects.filter(poi=poi)}


def candidates(poi) -> list[Candidate]:
    return list(Candidate.objects.filter(poi=poi).order_by("search_rank"))


def set_origin(poi, origin, status=PoiRanking.Status.UPDATED) -> None:
    PoiRanking.objects.filter(poi=poi).update(image_origin=origin, status=status)


@pytest.fixture
def four(db):
    """Four POIs with images (curated, pipeline, curator-chosen, fallback), 3 candidates each
    (rank 3 too far away), the first one the winner."""
    _, _, pois = make_pois(4, 3, image_every=1, flag_every=0)
    curated, pipeline, chosen, fallback = pois
    set_origin(curated, Origin.EXISTING, PoiRanking.Status.RANKED)
    set_origin(pipeline, Origin.PIPELINE)
    set_origin(chosen, Origin.CURATOR)
    set_origin(fallback, Origin.FALLBACK, PoiRanking.Status.FLAGGED)
    for poi in pois:  # distinct files, a blurred-copy penalty on rank 2
        for c in candidates(poi):
            Candidate.objects.filter(pk=c.pk).update(
                sha1=hashlib.sha1(c.image_url.encode()).hexdigest(),
                rank_score=c.score - 1 if c.search_rank == 2 else c.score,
            )
    return pois


def test_only_images_a_curator_chose_are_bootstrapped(four):
    curated, pipeline, chosen, fallback = four
    assert set(bootstrap_pois().values_list("pk", flat=True)) == {curated.pk, chosen.pk}
    result = bootstrap()
    assert (result.pois, result.good, result.bad) == (2, 2, 3)
    first, second, _far = candidates(curated)
    assert labels_of(curated) == {
        curated.image_file.url: ("good", "bootstrap"),
        first.image_url: ("bad", "bootstrap"),  # the curated image is something else
        second.image_url: ("bad", "bootstrap"),
    }  # the one too far away says nothing about looks: left out
    row = ImageTrainingData.objects.get(poi=curated, image_url=second.image_url)
    assert row.aesthetic_score == pytest.approx(second.score - 1)  # what the threshold saw
    assert row.model_name == "nima"
    assert not labels_of(pipeline)  # a pipeline winner is never "good"
    assert not labels_of(fallback)


def test_a_curator_chosen_image_is_good_and_its_own_candidate_is_not_bad(four):
    _, _, chosen, _ = four
    own, other, _ = candidates(chosen)  # `own` is the winner the curator chose
    bootstrap()
    assert labels_of(chosen) == {
        chosen.image_file.url: ("good", "bootstrap"),
        other.image_url: ("bad", "bootstrap"),
    }
    good = ImageTrainingData.objects.get(poi=chosen, image_url=chosen.image_file.url)
    assert good.aesthetic_score == own.score and good.model_name == "nima"


def test_after_a_re_rank_a_pipeline_winner_is_still_not_good_and_a_chosen_one_still_is(four):
    _, pipeline, chosen, _ = four
    # A re-rank keeps the images (status ranked) and saves fresh candidates (no winner); the
    # curator's "use this image" had labelled the chosen one good.
    set_origin(pipeline, Origin.PIPELINE, PoiRanking.Status.RANKED)
    set_origin(chosen, Origin.CURATOR, PoiRanking.Status.RANKED)
    Candidate.objects.filter(poi__in=[pipeline, chosen]).update(is_winner=False)
    own, other, _ = candidates(chosen)
    ImageTrainingData.objects.create(
        poi=chosen, image_url=own.image_url, label="good", source="curator", aesthetic_score=6
    )
    bootstrap()
    assert not labels_of(pipeline)
    assert labels_of(chosen) == {
        chosen.image_file.url: ("good", "bootstrap"),
        own.image_url: ("good", "curator"),  # untouched, and not labelled bad
        other.image_url: ("bad", "bootstrap"),
    }


def test_a_curated_file_identical_to_a_candidate_is_that_candidate(four, media_root):
    curated = four[0]
    data = b"the curated file, byte for byte the Commons original"
    path = media_root / curated.image_file.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    same = candidates(curated)[1]
    Candidate.objects.filter(pk=same.pk).update(sha1=hashlib.sha1(data).hexdigest())
    bootstrap()
    assert same.image_url not in labels_of(curated)
    good = ImageTrainingData.objects.get(poi=curated, image_url=curated.image_file.url)
    assert good.aesthetic_score == pytest.approx(same.score - 1)


def test_a_file_shared_by_two_pois_never_gets_good_and_bad_from_bootstrap(four):
    curated, pipeline, chosen, _ = four
    own = candidates(chosen)[0]  # the file the curator chose for `chosen`
    shared = candidates(curated)[1]  # the same file, found for `curated` too
    Candidate.objects.filter(pk=shared.pk).update(sha1=own.sha1)
    # An earlier bootstrap (before the curator chose it) had called that file bad elsewhere,
    # and a curator had called another file good on a third POI.
    stale = candidates(pipeline)[1]
    Candidate.objects.filter(pk=stale.pk).update(sha1=own.sha1)
    ImageTrainingData.objects.create(
        poi=pipeline, image_url=stale.image_url, label="bad", source="bootstrap"
    )
    liked = candidates(pipeline)[0]
    ImageTrainingData.objects.create(
        poi=pipeline, image_url=liked.image_url, label="good", source="curator"
    )
    Candidate.objects.filter(pk=candidates(curated)[0].pk).update(sha1=liked.sha1)

    result = bootstrap()

    assert shared.image_url not in labels_of(curated)  # good on `chosen`: not bad here
    assert candidates(curated)[0].image_url not in labels_of(curated)  # a curator liked it
    assert stale.image_url not in labels_of(pipeline)  # the contradicting bad label is gone
    assert result.removed == 1
    assert labels_of(pipeline)[liked.image_url] == ("good", "curator")
    sha1_of = {(c.poi_id, c.image_url): c.sha1 for c in Candidate.objects.all()}
    bad_sha1s = {
        sha1_of.get((r.poi_id, r.image_url))
        for r in ImageTrainingData.objects.filter(label="bad", source="bootstrap")
    }
    assert own.sha1 not in bad_sha1s and liked.sha1 not in bad_sha1s
    for sha1 in {c.sha1 for c in Candidate.objects.all()}:
        automatic = {
            r.label
            for r in ImageTrainingData.objects.filter(source="bootstrap")
            if sha1_of.get((r.poi_id, r.image_url)) == sha1
        }
        assert automatic != {"good", "bad"}, sha1


def test_bootstrap_keeps_existing_labels_and_adds_nothing_when_run_again(four, staff):
    curated = four[0]
    kept = candidates(curated)[1]
    ImageTrainingData.objects.create(
        poi=curated, image_url=kept.image_url, label="good", source="curator", labelled_by=staff
    )
    bootstrap()
    assert labels_of(curated)[kept.image_url] == ("good", "curator")
    count = ImageTrainingData.objects.count()
    assert bootstrap().good == 0 and ImageTrainingData.objects.count() == count


def test_bootstrap_labels_look_different_and_a_press_makes_them_the_curators(
    staff_client, staff, four
):
    curated = four[0]
    response = staff_client.post(reverse("image_ranking:bootstrap"), **HTMX)
    assert response.status_code == 200
    assert "Bootstrap: 2 good and 3 bad labels added from 2 curated POIs;" in response.text
    bad = candidates(curated)[0]
    card = staff_client.get(reverse("image_ranking:poi_card", args=[curated.pk])).text
    tile = card.split(f'id="t-c{bad.pk}"')[1].split("</figure>")[0]
    assert 'data-label-source="bootstrap"' in tile and "auto ✗" in tile
    assert 'aria-pressed="true"' not in tile  # not the curator's own label
    # The action bar (dashboard.js) reads the mark: an automatic label's Bad button confirms it
    # (does not clear), and it offers "Clear" (key c).
    assert 'data-label="bad" data-auto' in tile and "l" in re.search(r'data-acts="(\w*)"', tile)[1]
    url = reverse("image_ranking:label_candidate", args=[bad.pk])
    response = staff_client.post(url, {"label": "bad"}, **HTMX)
    row = ImageTrainingData.objects.get(poi=curated, image_url=bad.image_url)
    assert (row.label, row.source, row.labelled_by) == ("bad", "curator", staff)
    assert 'data-label-source="curator"' in response.text
    assert 'data-label="bad" data-auto' not in response.text  # the curator's own now


@pytest.mark.django_db(transaction=True)  # no test-wide transaction around it
def test_curated_files_are_hashed_before_the_transaction_that_writes_labels(four, monkeypatch):
    """Reading and hashing every curated file inside the write transaction held SQLite's write
    lock while workers waited: the hashes come first, outside any transaction."""
    from django.db import connection

    from image_ranking.review import bootstrap as module

    real = module.file_sha1
    seen: list[bool] = []

    def hashing(poi):
        seen.append(connection.in_atomic_block)
        return real(poi)

    monkeypatch.setattr(module, "file_sha1", hashing)
    bootstrap()
    assert seen == [False]  # the one curated POI with candidates, hashed outside
    assert ImageTrainingData.objects.filter(source="bootstrap").exists()
