"""Downloads under faults: transient ones are retried a bounded number of times, permanent ones
never; a body dribbled at 256 B/s ends at the deadline; the POI's time budget and a limiter
slot that never came are reported as such."""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest

from image_ranking.commons import budget
from image_ranking.commons.downloads import DownloadError, fetch_image_bytes
from image_ranking.commons.ratelimit import media_limiter
from tests.fakes.images import jpeg_bytes

CAP = 5_000_000
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def tower(commons_server):
    return commons_server.add_file("Tower.jpg", jpeg_bytes("coffee"))


def fetch(server, file, **options):
    options.setdefault("backoff", 0.01)
    return fetch_image_bytes(server.url_for_original(file), max_bytes=CAP, **options)


@pytest.mark.parametrize(
    ("kind", "options"),
    [("truncated", {}), ("reset", {}), ("html", {"status": 502}), ("503", {})],
    ids=["truncated", "connection-reset", "502", "503-without-retry-after"],
)
def test_one_transient_fault_is_retried_and_the_image_arrives(commons_server, tower, kind, options):
    commons_server.fail_next(kind, path=tower.path, **options)
    assert fetch(commons_server, tower) == tower.data
    first, second = commons_server.media_requests()
    assert (first.fault, second.fault) == (kind, None)


def test_a_timeout_is_retried_too(commons_server, tower):
    commons_server.fail_next("trickle", path=tower.path)
    assert fetch(commons_server, tower, timeout=1.0) == tower.data
    assert len(commons_server.media_requests()) == 2


def test_a_transient_fault_that_persists_gives_up_after_two_retries(commons_server, tower):
    commons_server.fail_always("reset", path=tower.path)
    with pytest.raises(DownloadError) as error:
        fetch(commons_server, tower)
    assert error.value.reason == "http_error" and error.value.transient
    assert len(commons_server.media_requests()) == 3


def test_missing_file_is_not_retried(commons_server, tower):
    missing = commons_server.origin + "/0/00/Missing.jpg"  # always 404
    with pytest.raises(DownloadError) as error:
        fetch_image_bytes(missing, max_bytes=CAP, backoff=0.01)
    assert "HTTP 404" in str(error.value)
    assert not error.value.transient
    assert len(commons_server.media_requests()) == 1


@pytest.mark.parametrize(
    ("kind", "reason", "cap"),
    [("not_image", None, CAP), ("html", "not_image", CAP), (None, "too_large", 10_000)],
    ids=["garbage-bytes-arrive", "html-page", "over-the-cap"],
)
def test_permanent_faults_are_not_retried(commons_server, tower, kind, reason, cap):
    if kind:
        commons_server.fail_always(kind, path=tower.path, status=200)
    if reason is None:  # garbage served as image/jpeg arrives; decoding refuses it later
        assert fetch(commons_server, tower) != tower.data
    else:
        with pytest.raises(DownloadError) as error:
            fetch_image_bytes(commons_server.url_for_original(tower), max_bytes=cap)
        assert error.value.reason == reason and not error.value.transient
    assert len(commons_server.media_requests()) == 1


def test_body_dribbled_at_256_bytes_a_second_ends_at_the_deadline(commons_server, tower):
    commons_server.fail_always("trickle", path=tower.path, rate=256)
    started = time.monotonic()
    with pytest.raises(DownloadError) as error:
        fetch(commons_server, tower, timeout=2.0, retries=0)
    elapsed = time.monotonic() - started
    assert error.value.reason == "timeout" and error.value.transient
    assert "within 2.0 s" in str(error.value)
    assert 1.8 <= elapsed < 3.0  # not 280 s (72 KB at 256 B/s), not "per chunk"


def test_no_download_outlives_the_pois_time_budget(commons_server, tower):
    commons_server.fail_always("trickle", path=tower.path)
    started = time.monotonic()
    with budget.time_budget(1.5), pytest.raises(DownloadError) as error:
        fetch(commons_server, tower, timeout=20.0)
    elapsed = time.monotonic() - started
    assert error.value.reason == "timeout"
    assert "time budget" in str(error.value)
    assert elapsed < 2.5
    assert len(commons_server.media_requests()) == 1  # no retry once the budget is spent


def hold_media_slots(stack: ExitStack) -> None:
    for _ in range(2):  # both media slots, as two other downloads would
        stack.enter_context(media_limiter().slot())


def test_a_download_that_never_got_a_slot_says_it_waited_for_one(commons_server, tower):
    with ExitStack() as stack:
        hold_media_slots(stack)
        with pytest.raises(DownloadError) as error:
            fetch(commons_server, tower, max_wait=0.3)
    message = str(error.value)
    assert error.value.reason == "rate_limited" and error.value.transient
    assert "waited 0.3 s for a commons_media slot" in message
    assert "timeout" not in message
    assert commons_server.media_requests() == []


def test_a_slot_wait_cut_by_the_budget_says_so(commons_server, tower):
    with ExitStack() as stack, budget.time_budget(0.4):
        hold_media_slots(stack)
        with pytest.raises(DownloadError) as error:
            fetch(commons_server, tower)
    message = str(error.value)
    assert error.value.reason == "rate_limited"
    assert "waited 0.4 s for a commons_media slot" in message and "time budget" in message
    assert commons_server.media_requests() == []
