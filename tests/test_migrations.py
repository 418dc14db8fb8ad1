"""Data migrations carry what older versions stored into today's schema."""

from __future__ import annotations

import math

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("image_ranking", "0006_curator_search_query")]
AFTER = [("image_ranking", "0007_stored_photo_identity")]


@pytest.mark.django_db(transaction=True)
def test_0007_keeps_stored_photos_identity_and_forgets_an_infinite_block():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    City = old.get_model("cities", "City")
    Poi = old.get_model("cities", "PointOfInterest")
    city = City.objects.create(name="Lisbon")
    poi = Poi.objects.create(city=city, name="Torre", category="see", image_file="x.jpg")
    old.get_model("image_ranking", "PoiRanking").objects.create(poi=poi, image_origin="pipeline")
    old.get_model("image_ranking", "Candidate").objects.create(
        poi=poi, search_rank=1, title="File:Torre.jpg", image_url="https://u/T.jpg",
        sha1="a" * 40, dhash="00ff00ff00ff00ff", is_winner=True,
    )  # fmt: skip
    old.get_model("image_ranking", "RateLimitBucket").objects.create(
        name="commons_api", blocked_until=math.inf
    )
    Validation = old.get_model("cities", "Validation")
    flagged = Poi.objects.create(city=city, name="Castelo", category="see")
    unlinked = Validation.objects.create(
        context="image_ranking", aggregate="no_images", specialized_aggregate=f"poi:{flagged.pk}"
    )  # found by its marker only, as older code could leave it
    duplicate = Validation.objects.create(
        context="image_ranking", aggregate="no_images", specialized_aggregate=f"poi:{flagged.pk}"
    )
    old.get_model("image_ranking", "PoiRanking").objects.create(poi=flagged, status="flagged")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    ranking = new.get_model("image_ranking", "PoiRanking").objects.get(poi_id=poi.pk)
    assert (ranking.image_sha1, ranking.image_title) == ("a" * 40, "File:Torre.jpg")
    assert bytes(ranking.image_scene) == b""  # the old hash is no same-scene test
    bucket = new.get_model("image_ranking", "RateLimitBucket").objects.get(name="commons_api")
    assert bucket.blocked_until == 0
    flag = new.get_model("image_ranking", "PoiRanking").objects.get(poi_id=flagged.pk).validation
    assert flag.pk == unlinked.pk and flag.specialized_aggregate == ""  # one link, no marker
    assert not new.get_model("cities", "Validation").objects.filter(pk=duplicate.pk).exists()

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # back to today's schema
