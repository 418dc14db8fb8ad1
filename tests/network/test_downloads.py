"""Safe downloads through real HTTP: allow-listed origins only (redirects included, the other
origin never contacted), size cap, image content only, Retry-After honoured."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from image_ranking.commons.downloads import DownloadError, fetch_image_bytes, is_allowed
from tests.fakes.images import jpeg_bytes, photo

CAP = 5_000_000


@pytest.fixture
def tower(commons_server):
    return commons_server.add_file("Tower.jpg", jpeg_bytes("coffee"))


def test_thumbnail_and_original_arrive_whole(commons_server, tower, settings):
    settings.WIKIMEDIA_API_TOKEN = "api-only-token"
    thumb = fetch_image_bytes(commons_server.url_for_thumb(tower, 330), max_bytes=CAP)
    assert Image.open(io.BytesIO(thumb)).size == (330, 220)
    assert fetch_image_bytes(commons_server.url_for_original(tower), max_bytes=CAP) == tower.data
    (request, _) = commons_server.media_requests()
    assert request.headers["User-Agent"].startswith(settings.WIKIMEDIA_USER_AGENT)
    assert "Authorization" not in request.headers


def test_url_outside_the_allow_list_is_never_fetched(commons_server, outside_server):
    elsewhere = outside_server.add_file("Tower.jpg", jpeg_bytes("coffee"))
    with pytest.raises(DownloadError) as error:
        fetch_image_bytes(outside_server.url_for_original(elsewhere), max_bytes=CAP)
    assert error.value.reason == "origin_not_allowed"
    assert outside_server.requests == []


def test_redirect_leaving_the_allow_list_is_never_followed(commons_server, outside_server, tower):
    elsewhere = outside_server.add_file("Tower.jpg", jpeg_bytes("coffee"))
    path = tower.thumb_path(330)
    commons_server.fail_next(
        "redirect", path=path, location=outside_server.url_for_original(elsewhere)
    )
    with pytest.raises(DownloadError) as error:
        fetch_image_bytes(commons_server.origin + path, max_bytes=CAP)
    assert error.value.reason == "origin_not_allowed"
    assert outside_server.requests == []
    assert len(commons_server.media_requests()) == 1


def test_redirect_inside_the_allow_list_is_followed(commons_server, tower):
    path = "/moved/Tower.jpg"
    commons_server.fail_next("redirect", path=path, location=tower.path)  # relative Location
    data = fetch_image_bytes(commons_server.origin + path, max_bytes=CAP)
    assert data == tower.data


def test_redirect_loop_stops(commons_server, tower):
    commons_server.fail_always("redirect", path=tower.path)  # Location: the same URL
    with pytest.raises(DownloadError) as error:
        fetch_image_bytes(commons_server.url_for_original(tower), max_bytes=CAP)
    assert error.value.reason == "too_many_redirects"
    assert len(commons_server.media_requests()) == 6


def test_origin_match_is_exact(settings):
    settings.IMAGE_DOWNLOAD_ORIGINS = ["https://upload.wikimedia.org"]
    assert is_allowed("https://upload.wikimedia.org/a/ab/X.jpg")
    assert is_allowed("https://upload.wikimedia.org:443/a/ab/X.jpg")
    assert not is_allowed("http://upload.wikimedia.org/a/ab/X.jpg")
    assert not is_allowed("https://upload.wikimedia.org:8443/a/ab/X.jpg")
    assert not is_allowed("https://upload.wikimedia.org.evil.example/X.jpg")
    assert not is_allowed("https://evil.example/upload.wikimedia.org/X.jpg")
    assert not is_allowed("https://user@evil.example/X.jpg")
    assert not is_allowed("file:///etc/passwd")


def test_larger_than_the_cap_is_refused(commons_server, tower):
    with pytest.raises(DownloadError) as error:
        fetch_image_bytes(commons_server.url_for_original(tower), max_bytes=10_000)
    assert error.value.reason == "too_large"


def test_not_an_image_content_type_is_refused(commons_server, tower):
    commons_server.fail_next("html", path=tower.path, status=200)
    with pytest.raises(DownloadError) as error:
        fetch_image_bytes(commons_server.url_for_original(tower), max_bytes=CAP)
    assert error.value.reason == "not_image"


def test_connection_cut_halfway_every_time_is_truncated(commons_server, tower):
    commons_server.fail_always("truncated", path=tower.path)
    with pytest.raises(DownloadError) as error:
        fetch_image_bytes(commons_server.url_for_original(tower), max_bytes=CAP, backoff=0.01)
    assert error.value.reason == "truncated"
    assert error.value.transient
    assert len(commons_server.media_requests()) == 3  # the first try and 2 retries


def test_damaged_file_bytes_arrive_as_they_are(commons_server):
    # A file whose stored bytes are broken downloads fine; decoding is the caller's check.
    broken = commons_server.add_file("Broken.jpg", photo("rocket"), damage="truncated")
    data = fetch_image_bytes(commons_server.url_for_original(broken), max_bytes=CAP)
    assert data == broken.data


def test_429_on_a_thumbnail_waits_as_told(commons_server, tower):
    url = commons_server.url_for_thumb(tower, 330)
    commons_server.fail_next("429", path=tower.thumb_path(330), retry_after=1)
    assert fetch_image_bytes(url, max_bytes=CAP)
    first, second = commons_server.media_requests()
    assert second.time - first.time >= 1.0


def test_non_standard_thumbnail_width_is_refused_like_commons(commons_server, tower):
    with pytest.raises(DownloadError) as error:
        fetch_image_bytes(commons_server.url_for_thumb(tower, 300), max_bytes=CAP, attempts=1)
    assert error.value.reason == "rate_limited"  # Commons answers 429 "Use thumbnail steps"


def test_slow_answer_times_out(commons_server, tower):
    commons_server.fail_next("slow", path=tower.path, delay=3)
    with pytest.raises(DownloadError) as error:
        fetch_image_bytes(
            commons_server.url_for_original(tower), max_bytes=CAP, timeout=0.5, retries=0
        )
    assert error.value.reason == "timeout"
    assert error.value.transient
