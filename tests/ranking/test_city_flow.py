"""The whole flow on a realistic city: the Lisbon demo export, real photos, the real model.

Every POI in a list gets its own Commons answer, chosen by its position so each outcome is
present: a good photo among degraded copies (stored), no hits (no_images), only photos taken
far away (no_images), a Commons error (fetch_failed), and an existing curated image (kept).
"""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest
from django.core.management import call_command
from PIL import Image, ImageOps

from cities.models import City, PointOfInterest, Validation
from cities.services.city_import import import_city_export_file
from image_ranking.models import Candidate, PoiRanking
from tests.conftest import REPO_ROOT
from tests.fakes.images import PHOTO_NAMES, degrade, jpeg_bytes, photo
from tests.ranking.helpers import store_bytes

pytestmark = pytest.mark.django_db

LISBON_EXPORT = REPO_ROOT / "cities" / "fixtures" / "demo" / "lisbon.json"


def distinct_scene(image: Image.Image, variant: int) -> Image.Image:
    if variant & 1:
        image = ImageOps.mirror(image)
    if variant & 2:
        image = ImageOps.flip(image)
    return image


def upscaled(image: Image.Image, width: int = 1600) -> Image.Image:
    return image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)


@pytest.fixture
def lisbon(commons_server, nima_scorer, settings):
    settings.IMAGE_RANKING_THUMB_WIDTH = 500
    settings.IMAGE_RANKING_WINNER_WIDTH = 1280
    settings.IMAGE_RANKING_FALLBACK = False
    import_city_export_file(LISBON_EXPORT)
    city = City.objects.get(name="Lisbon")
    pois = list(
        PointOfInterest.objects.filter(city=city, lists__isnull=False).distinct().order_by("pk")
    )
    expected = {}
    for index, poi in enumerate(pois):
        kind = ("stored", "stored", "no_hits", "far", "commons_error", "kept")[index % 6]
        name = PHOTO_NAMES[index % len(PHOTO_NAMES)]
        # Every POI its own scene: the same photo never wins for two POIs of one city.
        base = distinct_scene(photo(name), index // len(PHOTO_NAMES))
        if kind in {"stored", "kept"}:
            files = [
                commons_server.add_file(f"{index} {name} {k}.jpg", upscaled(degrade(base, k)))
                for k in ("dark", "crop")
            ]
            files.insert(1, commons_server.add_file(f"{index} {name}.jpg", upscaled(base)))
            commons_server.set_results(poi.name, files)
        elif kind == "far":
            far = commons_server.add_file(
                f"{index} elsewhere.jpg",
                upscaled(base),
                coords=(40.4168, -3.7038),  # Madrid
            )
            commons_server.set_results(poi.name, [far])
        elif kind == "commons_error":
            commons_server.fail_always("api_error", query=poi.name)
        if kind == "kept":
            store_bytes(poi, jpeg_bytes("astronaut"))
        expected[poi.pk] = kind
    return pois, expected


def test_ranking_lisbon_end_to_end(lisbon, commons_server, media_root):
    pois, expected = lisbon
    out = io.StringIO()
    call_command(
        "rank_poi_images",
        "--sync",
        "--city",
        "Lisbon",
        "--threshold",
        "0",
        stdout=out,
        stderr=io.StringIO(),
    )
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    kinds = Counter(expected.values())
    in_scope = len(pois) - kinds["kept"]  # scope "missing": POIs with a curated image skipped
    assert result["status"] == "partial"  # the Commons errors: some POIs failed
    assert result["processed_count"] == in_scope
    assert result["updated_count"] == kinds["stored"]
    assert result["flagged_count"] == kinds["no_hits"] + kinds["far"]
    assert result["failed_count"] == kinds["commons_error"]

    # exactly one API request per POI ranked, none for the POIs kept out of scope
    queries = Counter(r.search_text for r in commons_server.api_requests())
    ranked = [p for p in pois if expected[p.pk] != "kept"]
    assert queries == Counter({p.name: 1 for p in ranked})

    flags = {
        r.poi_id: r.validation.aggregate
        for r in PoiRanking.objects.select_related("validation").exclude(validation=None)
    }
    assert len(flags) == Validation.objects.filter(context="image_ranking").count()
    for poi in pois:
        poi.refresh_from_db()
        kind = expected[poi.pk]
        if kind == "stored":
            assert poi.image_file.name == PointOfInterest._meta.get_field(
                "image_file"
            ).generate_filename(poi, "x.jpg")
            with Image.open(media_root / poi.image_file.name) as image:
                w, h = image.size  # fits 800x600 and touches one side (they were bigger)
                assert w <= 800 and h <= 600 and (w == 800 or h == 600), poi.name
            assert Candidate.objects.get(poi=poi, is_winner=True).search_rank == 2  # the original
            assert poi.pk not in flags
        elif kind == "kept":
            assert poi.image_file and not Candidate.objects.filter(poi=poi).exists()
        else:
            assert not poi.image_file, poi.name
            want = {"no_hits": "no_images", "far": "no_images", "commons_error": "fetch_failed"}
            assert flags[poi.pk] == want[kind], poi.name
            assert PoiRanking.objects.get(poi=poi).validation.aggregate == want[kind]
    assert len(flags) == kinds["no_hits"] + kinds["far"] + kinds["commons_error"]

    # nothing else was written to the media folder
    written = sorted(str(p.relative_to(media_root)) for p in media_root.rglob("*") if p.is_file())
    assert written == sorted(p.image_file.name for p in pois if p.image_file)


def test_second_run_over_lisbon_changes_nothing_and_duplicates_nothing(lisbon, commons_server):
    call_command(
        "rank_poi_images", "--sync", "--threshold", "0", stdout=io.StringIO(), stderr=io.StringIO()
    )
    flags_before = sorted(
        Validation.objects.filter(context="image_ranking").values_list("pk", "aggregate")
    )
    out = io.StringIO()
    call_command("rank_poi_images", "--sync", "--threshold", "0", stdout=out, stderr=io.StringIO())
    result = json.loads(out.getvalue().strip())
    _pois, expected = lisbon
    kinds = Counter(expected.values())
    assert result["processed_count"] == kinds["no_hits"] + kinds["far"] + kinds["commons_error"]
    assert result["updated_count"] == 0
    flags_after = sorted(
        Validation.objects.filter(context="image_ranking").values_list("pk", "aggregate")
    )
    assert flags_after == flags_before
