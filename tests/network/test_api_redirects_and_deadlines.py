"""The Action API client: redirects stay on the API's own origin (the token never leaves it),
every request ends at its wall-clock deadline or the POI's time budget, and a request that
never got a limiter slot says so."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest

from image_ranking.commons import budget
from image_ranking.commons.client import CommonsError, get_commons_client
from image_ranking.commons.ratelimit import api_limiter
from tests.fakes.images import jpeg_bytes

POI = "Torre de Belém"
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def belem(commons_server):
    tower = commons_server.add_file("Belem tower.jpg", jpeg_bytes("coffee"))
    commons_server.set_results(POI, [tower])
    return tower


@pytest.fixture
def client(commons_server, settings):
    settings.WIKIMEDIA_API_TOKEN = "secret-token"
    return get_commons_client(backoff=0.05, timeout=(2.0, 2.0))


def test_redirect_to_another_origin_is_never_fetched(client, commons_server, outside_server, belem):
    outside_server.set_results(POI, [outside_server.add_file("Fake.jpg", jpeg_bytes("coffee"))])
    query = urlencode(client.params(POI, 10))
    commons_server.fail_next("redirect", target="api", location=f"{outside_server.api_url}?{query}")

    with pytest.raises(CommonsError) as error:
        client.search_candidates(POI)

    assert error.value.reason == "redirect_refused"
    assert outside_server.origin.removeprefix("http://") in str(error.value)
    assert outside_server.requests == []  # neither the search nor the token went there
    assert len(commons_server.api_requests()) == 1  # and it is not retried


@pytest.mark.parametrize(
    "location",
    ["https://{host}:{port}/w/api.php", "http://localhost:{port}/w/api.php", "//{host}:1/x"],
    ids=["other-scheme", "other-host", "other-port"],
)
def test_every_part_of_the_origin_counts(client, commons_server, belem, location):
    host, port = commons_server.origin.removeprefix("http://").split(":")
    commons_server.fail_next(
        "redirect", target="api", location=location.format(host=host, port=port)
    )
    with pytest.raises(CommonsError) as error:
        client.search_candidates(POI)
    assert error.value.reason == "redirect_refused"
    assert len(commons_server.requests) == 1


def test_redirect_on_the_apis_own_origin_is_followed_with_the_token(client, commons_server, belem):
    query = urlencode(client.params(POI, 10))
    commons_server.fail_next("redirect", target="api", location=f"/w/api.php?{query}")

    (candidate,) = client.search_candidates(POI)

    assert candidate.title == "File:Belem tower.jpg"
    first, second = commons_server.api_requests()
    assert first.fault == "redirect" and second.fault is None
    assert second.headers["Authorization"] == "Bearer secret-token"


def test_api_answer_dribbled_slowly_ends_at_the_deadline(commons_server, belem):
    client = get_commons_client(timeout=(2.0, 2.0), attempts=1)
    commons_server.fail_always("trickle", target="api", rate=16)
    started = time.monotonic()
    with pytest.raises(CommonsError) as error:
        client.search_candidates(POI)
    elapsed = time.monotonic() - started
    assert error.value.reason == "timeout"
    assert 1.8 <= elapsed < 3.0


def test_no_api_request_outlives_the_pois_time_budget(commons_server, belem):
    client = get_commons_client(backoff=0.05)  # production timeouts: 30 s per attempt
    commons_server.fail_always("trickle", target="api", rate=16)
    started = time.monotonic()
    with budget.time_budget(1.5), pytest.raises(CommonsError) as error:
        client.search_candidates(POI)
    assert error.value.reason == "timeout" and "time budget" in str(error.value)
    assert time.monotonic() - started < 2.5
    assert len(commons_server.api_requests()) == 1


def test_a_search_that_never_got_a_slot_says_it_waited_for_one(commons_server, belem):
    client = get_commons_client(max_wait=0.3)
    # The slot is held as by another worker's request in flight.
    with api_limiter().slot(), pytest.raises(CommonsError) as error:
        client.search_candidates(POI)
    message = str(error.value)
    assert error.value.reason == "rate_limited"
    assert "waited 0.3 s for a commons_api slot" in message and "timeout" not in message
    assert commons_server.api_requests() == []
