"""Bounds on every input, through real HTTP with the Commons stand-in: hostile thumbnails of
every format, a gzip-bomb API answer and unusable Retry-After values each cost one request
or one candidate, never a worker's memory or every worker's time."""

from __future__ import annotations

import logging
import math
import tracemalloc

import pytest

from cities.models import City, PoiList, PointOfInterest, Validation
from image_ranking.commons.client import CommonsError, get_commons_client
from image_ranking.commons.downloads import fetch_image_bytes
from image_ranking.commons.ratelimit import (
    API_BUCKET,
    MEDIA_BUCKET,
    api_limiter,
    reset_local_limits,
)
from image_ranking.dbclock import epoch as database_time
from image_ranking.models import Candidate, PoiRanking, RateLimitBucket
from image_ranking.pipeline.ranking import Outcome, rank_poi
from tests.fakes.images import jpeg_bytes

POI = "Torre de Belém"
HOUR = 3600.0
UNUSABLE = ["inf", "nan", "-5", "soon", "9" * 400]  # the last overflows a float to inf
UNUSABLE_IDS = ["inf", "nan", "negative", "garbage", "overflow"]


@pytest.fixture
def poi(db) -> PointOfInterest:
    city = City.objects.create(name="Lisbon", latitude=38.7139, longitude=-9.1394)
    poi = PointOfInterest.objects.create(
        city=city, name=POI, category="see", latitude=38.6916, longitude=-9.2160
    )
    PoiList.objects.create(title="Sights", city=city).pois.add(poi)
    return poi


@pytest.fixture
def shared_limiter(settings):
    """The database-backed limiter (the stand-in fixture turns it off), fast enough that no
    test waits for a token: blocks land in RateLimitBucket rows."""
    settings.WIKIMEDIA_RATE_PER_HOUR = 36_000


def blocked_for(bucket: str) -> float:
    """Seconds from now the bucket's Retry-After block lasts (<= 0: none)."""
    row = RateLimitBucket.objects.filter(name=bucket).first()
    return -math.inf if row is None else row.blocked_until - database_time()


# --- thumbnails -------------------------------------------------------------------------------
def test_oversized_png_webp_and_gif_thumbnails_fail_alone_before_decoding(
    commons_server, poi, settings, nima_scorer
):
    """Commons describes each as 400 px, so the 500px rendition is the 7000x7000 original;
    the POI is ranked with its other candidate (scored by NIMA)."""
    settings.IMAGE_RANKING_THUMB_WIDTH = 500
    good = commons_server.add_file("Belem tower.jpg", jpeg_bytes("coffee"), coords=(38.69, -9.21))
    hostile = [
        commons_server.add_oversized(f"Belem huge.{fmt.lower()}", fmt)
        for fmt in ("PNG", "WEBP", "GIF")
    ]
    commons_server.set_results(POI, [*hostile, good])

    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED

    errors = dict(Candidate.objects.filter(poi=poi).values_list("title", "error"))
    for file, fmt in zip(hostile, ("PNG", "WEBP", "GIF"), strict=True):
        assert errors[file.title] == (
            f"thumbnail rejected: 7000x7000 px {fmt}, far larger than the 500 px rendition "
            "asked for (not decoded: over 4.0 MP)"
        )
    assert errors[good.title] == ""
    assert Candidate.objects.get(poi=poi, is_winner=True).title == good.title
    assert PointOfInterest.objects.get(pk=poi.pk).image_file


# --- API answers ------------------------------------------------------------------------------
def test_a_gzip_bomb_answer_is_a_commons_fault_stopped_by_the_cap(commons_server, settings):
    """64 MiB of JSON in a 65 KB gzip body against a 1 MiB cap: the cap ends the read, and the
    Python heap never holds more than a few times the cap (old code: the whole 64 MiB, then
    parsed as a valid empty answer)."""
    settings.WIKIMEDIA_API_MAX_BYTES = 1 << 20
    commons_server.fail_next("gzip_bomb", query=POI, size=64 << 20)
    client = get_commons_client(backoff=0.05, timeout=(2.0, 10.0))
    tracemalloc.start()
    try:
        with pytest.raises(CommonsError) as error:
            client.search_candidates(POI)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert error.value.reason == "too_large"
    assert str(error.value) == (
        "too_large: the answer decodes to more than 1,048,576 bytes (WIKIMEDIA_API_MAX_BYTES); "
        "not read further"
    )
    assert peak < 4 << 20, f"{peak / 2**20:.1f} MiB traced"
    assert len(commons_server.api_requests()) == 1  # a hostile answer is not asked for again


def test_a_gzip_bomb_answer_flags_the_poi_fetch_failed(commons_server, poi, settings):
    settings.WIKIMEDIA_API_MAX_BYTES = 1 << 20
    commons_server.fail_next("gzip_bomb", size=64 << 20)
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.FAILED
    ranking = PoiRanking.objects.get(poi=poi)
    assert ranking.reason.startswith(
        "Commons search failed: too_large: the answer decodes to more than 1,048,576 bytes"
    )
    assert Validation.objects.get(context="image_ranking").aggregate == "fetch_failed"


def test_a_real_shaped_answer_is_far_under_the_default_cap(commons_server, settings):
    """20 hits with long titles and 15 categories each fit in 64 KB, 1/64 of the 4 MiB
    default (measured: about 38 KB decoded)."""
    files = [
        commons_server.add_file(
            f"Torre de Belém seen from the Tagus at sunset, Lisbon, Portugal {i:02d}.jpg",
            jpeg_bytes("coffee") + bytes([i]),
            coords=(38.69, -9.21),
            categories=[f"Belém Tower in {year}" for year in range(2000, 2015)],
        )
        for i in range(20)
    ]
    commons_server.set_results(POI, files)
    settings.WIKIMEDIA_API_MAX_BYTES = 64 * 1024  # still enough for it
    assert len(get_commons_client().search_candidates(POI, limit=20)) == 20


# --- Retry-After ------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", ["429", "503", "maxlag"])
@pytest.mark.parametrize("value", UNUSABLE, ids=UNUSABLE_IDS)
def test_an_unusable_retry_after_from_the_api_fails_that_request_and_is_never_stored(
    commons_server, shared_limiter, caplog, status, value
):
    commons_server.set_results(POI, [commons_server.add_file("Belem.jpg", jpeg_bytes("coffee"))])
    commons_server.fail_next(status, query=POI, retry_after=value)
    client = get_commons_client(backoff=0.05, timeout=(2.0, 5.0), max_wait=5.0)
    with caplog.at_level(logging.WARNING, logger="image_ranking.commons.client"):
        assert len(client.search_candidates(POI)) == 1  # retried after the usual backoff
    assert RateLimitBucket.objects.get(name=API_BUCKET).blocked_until == 0  # never stored
    told = "replicas lagging: Waiting for" if status == "maxlag" else f"HTTP {status}"
    assert told in caplog.text
    assert f"with an unusable Retry-After {value[:40]!r}; a fault of this request" in caplog.text
    assert len(client.search_candidates("Another POI")) == 0  # later requests go at once
    assert len(commons_server.api_requests()) == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", ["429", "503"])
@pytest.mark.parametrize("value", UNUSABLE, ids=UNUSABLE_IDS)
def test_an_unusable_retry_after_on_a_download_fails_that_request_and_is_never_stored(
    commons_server, shared_limiter, caplog, status, value
):
    tower = commons_server.add_file("Tower.jpg", jpeg_bytes("coffee"))
    url = commons_server.url_for_thumb(tower, 330)
    commons_server.fail_next(status, path=tower.thumb_path(330), retry_after=value)
    with caplog.at_level(logging.WARNING, logger="image_ranking.commons.downloads"):
        assert fetch_image_bytes(url, max_bytes=5_000_000, backoff=0.05)
    assert RateLimitBucket.objects.get(name=MEDIA_BUCKET).blocked_until == 0  # never stored
    assert f"HTTP {status} with an unusable Retry-After {value[:40]!r}" in caplog.text
    assert fetch_image_bytes(url, max_bytes=5_000_000)  # later downloads go at once
    assert len(commons_server.media_requests()) == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "value", ["86400", "Fri, 31 Dec 9999 23:59:59 GMT"], ids=["a-day", "year-9999"]
)
def test_a_valid_but_huge_retry_after_is_clamped_to_an_hour(commons_server, shared_limiter, value):
    client = get_commons_client(backoff=0.05, max_wait=2.0)
    commons_server.fail_next("429", query=POI, retry_after=value)
    with pytest.raises(CommonsError) as error:
        client.search_candidates(POI)
    assert str(error.value) == "rate_limited: HTTP 429, retry after 3600 s"
    assert HOUR - 5 < blocked_for(API_BUCKET) <= HOUR

    tower = commons_server.add_file("Tower.jpg", jpeg_bytes("coffee"))
    commons_server.fail_next("503", path=tower.path, retry_after=value)
    with pytest.raises(Exception, match="server asked to wait 3600 s"):
        fetch_image_bytes(commons_server.url_for_original(tower), max_bytes=5_000_000)
    assert HOUR - 5 < blocked_for(MEDIA_BUCKET) <= HOUR


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("seconds", [math.inf, math.nan, -1.0], ids=["inf", "nan", "negative"])
def test_block_for_refuses_a_wait_that_is_not_finite_and_positive(settings, seconds):
    """The last line of defence, whoever the caller: nothing is stored, shared or local."""
    settings.WIKIMEDIA_RATE_PER_HOUR = 36_000
    shared = api_limiter()
    with shared.slot(max_wait=1.0):  # the bucket's row exists
        pass
    with pytest.raises(ValueError, match="refused to block for"):
        shared.block_for(seconds)
    assert RateLimitBucket.objects.get(name=API_BUCKET).blocked_until == 0
    settings.WIKIMEDIA_RATE_PER_HOUR = 0  # the in-process limiter
    with pytest.raises(ValueError, match="refused to block for"):
        api_limiter().block_for(seconds)
    try:
        with api_limiter().slot(max_wait=0.5):  # this process is not blocked either
            pass
    finally:
        reset_local_limits()
