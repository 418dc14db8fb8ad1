"""The Commons client through real HTTP against the stand-in: one request per POI, photos
only, and every fault of design.md's "Rules for bad input and faults" ending in a clear error."""

from __future__ import annotations

import logging

import pytest

from image_ranking.commons.answers import CommonsCandidate
from image_ranking.commons.client import CommonsError, get_commons_client
from image_ranking.commons.renditions import rendition_url
from tests.fakes.images import jpeg_bytes, photo

POI = "Torre de Belém"


@pytest.fixture
def client(commons_server, settings):
    # The documented request asks for the 330px step; the production default may differ.
    settings.IMAGE_RANKING_THUMB_WIDTH = 330
    # Short backoff and timeouts keep fault tests quick; the logic is the production one.
    return get_commons_client(backoff=0.05, timeout=(2.0, 2.0))


@pytest.fixture
def belem(commons_server):
    """Five hits in rank order: two photos, an SVG map, a TIFF scan and a duplicate."""
    s = commons_server
    files = [
        s.add_file("Belem tower at dusk.jpg", jpeg_bytes("coffee"), coords=(38.6916, -9.2160)),
        s.add_file("Belem map.svg", photo("rocket"), mime="image/svg+xml"),
        s.add_file("Belem scan.tif", photo("rocket"), mime="image/tiff"),
        s.add_file("Belem cloister.png", photo("astronaut"), mime="image/png"),
        s.add_file("Belem tower copy.jpg", jpeg_bytes("coffee")),
        s.add_file("Belem gif.gif", photo("chelsea"), mime="image/gif"),
    ]
    s.set_results(POI, files)
    return files


def test_one_request_gives_photos_in_rank_order(client, commons_server, belem):
    candidates = client.search_candidates(POI)

    assert [c.title for c in candidates] == [
        "File:Belem tower at dusk.jpg",
        "File:Belem cloister.png",
        "File:Belem gif.gif",
    ]
    # filetype:bitmap drops the SVG on the server; the client drops the TIFF and the copy.
    assert [c.search_rank for c in candidates] == [1, 3, 5]
    assert len(commons_server.api_requests()) == 1
    assert len(commons_server.api_requests(POI)) == 1
    first = candidates[0]
    assert first == CommonsCandidate(
        search_rank=1,
        title="File:Belem tower at dusk.jpg",
        description_url=f"{commons_server.origin}/wiki/File:Belem_tower_at_dusk.jpg",
        image_url=commons_server.url_for_original(belem[0]),
        thumb_url=commons_server.url_for_thumb(belem[0], 330),
        width=belem[0].width,
        height=belem[0].height,
        size=len(belem[0].data),
        mime="image/jpeg",
        sha1=belem[0].sha1,
        latitude=38.6916,
        longitude=-9.2160,
    )
    assert candidates[1].latitude is None


def test_request_is_the_documented_generator_query(client, commons_server, belem, settings):
    settings.WIKIMEDIA_API_TOKEN = "secret-token"
    client.search_candidates(POI)

    (request,) = commons_server.api_requests()
    assert request.query == {
        "action": "query",
        "format": "json",
        "formatversion": "2",
        "maxlag": "5",
        "generator": "search",
        "gsrsearch": f"filetype:bitmap {POI}",
        "gsrnamespace": "6",
        "gsrlimit": "10",
        "prop": "imageinfo|categories|coordinates",
        "iiprop": "url|size|mime|sha1",
        "iiurlwidth": "330",
        "clshow": "!hidden",
        "cllimit": "max",
        "colimit": "max",
    }
    assert request.headers["User-Agent"].startswith(settings.WIKIMEDIA_USER_AGENT)
    assert "python-requests/" in request.headers["User-Agent"]
    assert request.headers["Accept-Encoding"] == "gzip"
    assert request.headers["Authorization"] == "Bearer secret-token"


def test_thumbnail_width_setting_is_a_standard_step(commons_server, belem, settings):
    settings.IMAGE_RANKING_THUMB_WIDTH = 300  # rounded up to the 330 step, like Commons does
    (first, *_) = get_commons_client().search_candidates(POI)
    assert commons_server.api_requests()[0].query["iiurlwidth"] == "330"
    assert first.thumb_url.endswith("/330px-Belem_tower_at_dusk.jpg")


def test_no_hits_is_an_empty_list(client, commons_server):
    assert client.search_candidates("Nowhere at all") == []
    assert len(commons_server.api_requests()) == 1


def test_only_non_photo_hits_is_an_empty_list(client, commons_server):
    s = commons_server
    s.set_results(
        "Museu",
        [
            s.add_file("Museu plan.svg", photo("rocket"), mime="image/svg+xml"),
            s.add_file("Museu leaflet.pdf", photo("rocket"), mime="application/pdf"),
            s.add_file("Museu scan.tif", photo("rocket"), mime="image/tiff"),
        ],
    )
    assert client.search_candidates("Museu") == []


def test_limit_and_more_hits_than_asked(client, commons_server):
    s = commons_server
    files = [s.add_file(f"Square {i}.jpg", jpeg_bytes("chelsea", width=100 + i)) for i in range(12)]
    s.set_results("Praça", files)
    candidates = client.search_candidates("Praça", limit=10)
    assert [c.search_rank for c in candidates] == list(range(1, 11))


def test_unknown_warnings_are_logged_not_fatal(client, commons_server, belem, caplog):
    commons_server.fail_next("warnings")
    with caplog.at_level(logging.WARNING, logger="image_ranking.commons.client"):
        assert len(client.search_candidates(POI)) == 3
    assert "Unrecognized parameter" in caplog.text


def test_api_error_json_is_an_error_without_retry(client, commons_server, belem):
    commons_server.fail_next("api_error")
    with pytest.raises(CommonsError) as error:
        client.search_candidates(POI)
    assert error.value.reason == "api_error"
    assert len(commons_server.api_requests()) == 1


@pytest.mark.parametrize("kind", ["429", "503", "maxlag"])
def test_told_to_wait_waits_as_told_then_succeeds(client, commons_server, belem, kind):
    commons_server.fail_next(kind, query=POI, retry_after=1)
    assert len(client.search_candidates(POI)) == 3
    first, second = commons_server.api_requests(POI)
    assert second.time - first.time >= 1.0


def test_retry_after_longer_than_allowed_fails_fast_and_blocks(commons_server, belem):
    client = get_commons_client(max_wait=2.0)
    commons_server.fail_next("429", retry_after=3600)
    with pytest.raises(CommonsError) as error:
        client.search_candidates(POI)
    assert error.value.reason == "rate_limited"
    # The next search must not go out either before the hour has passed.
    with pytest.raises(CommonsError) as error:
        client.search_candidates("Another POI")
    assert error.value.reason == "rate_limited"
    assert len(commons_server.api_requests()) == 1


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("html", "http_error"),
        ("malformed_json", "bad_response"),
        ("empty", "bad_response"),
        ("429", "rate_limited"),
        ("maxlag", "maxlag"),
    ],
)
def test_persistent_faults_end_in_a_clear_reason(client, commons_server, belem, kind, reason):
    commons_server.fail_always(kind, retry_after=0)
    with pytest.raises(CommonsError) as error:
        client.search_candidates(POI)
    assert error.value.reason == reason
    assert len(commons_server.api_requests()) == client.attempts


def test_html_page_with_status_200_is_a_bad_response(client, commons_server, belem):
    commons_server.fail_always("html", status=200)
    with pytest.raises(CommonsError) as error:
        client.search_candidates(POI)
    assert error.value.reason == "bad_response"


@pytest.mark.parametrize("kind", ["html", "malformed_json", "empty"])
def test_one_transient_fault_is_retried(client, commons_server, belem, kind):
    commons_server.fail_next(kind)
    assert len(client.search_candidates(POI)) == 3
    assert len(commons_server.api_requests()) == 2


def test_slow_answer_times_out(commons_server, belem):
    client = get_commons_client(backoff=0.05, timeout=(1.0, 0.3), attempts=2)
    commons_server.fail_always("slow", delay=2)
    with pytest.raises(CommonsError) as error:
        client.search_candidates(POI)
    assert error.value.reason == "timeout"
    assert len(commons_server.api_requests()) == 2


def test_rendition_url_changes_only_the_width_step():
    thumb = "https://upload.wikimedia.org/wikipedia/commons/thumb/a/ab/Fo_o.jpg/330px-Fo_o.jpg"
    assert rendition_url(thumb, 1280) == thumb.replace("/330px-", "/1280px-")
    tif = "https://upload.wikimedia.org/x/thumb/a/ab/S.tif/lossy-page1-330px-S.tif.jpg"
    assert rendition_url(tif, 960).endswith("/lossy-page1-960px-S.tif.jpg")
    with pytest.raises(ValueError):
        rendition_url(thumb, 1000)
    with pytest.raises(ValueError):
        rendition_url("https://upload.wikimedia.org/wikipedia/commons/a/ab/Foo.jpg", 500)


def test_a_search_result_at_a_width_is_a_rendition_or_the_original(client, commons_server, belem):
    from image_ranking.commons.renditions import rendition_or_original

    tower = client.search_candidates(POI)[0]  # 600 px wide original
    assert rendition_or_original(tower, 500) == commons_server.url_for_thumb(belem[0], 500)
    assert rendition_or_original(tower, 0) == tower.image_url
    assert rendition_or_original(tower, 1280) == tower.image_url


def test_small_original_has_the_original_as_thumbnail(client, commons_server):
    tiny = commons_server.add_file("Tiny.jpg", jpeg_bytes("coffee", width=200))
    commons_server.set_results("Tiny", [tiny])
    (candidate,) = client.search_candidates("Tiny")
    assert candidate.thumb_url == candidate.image_url


def test_visible_categories_come_with_the_same_one_request(client, commons_server):
    file = commons_server.add_file(
        "Estufa.jpg",
        jpeg_bytes("coffee"),
        categories=["Estufa Fria", "Parque Eduardo VII"],
        hidden_categories=["CC-BY-SA-4.0", "Files with no machine-readable author"],
    )
    commons_server.set_results("Estufa Fria", [file])
    (candidate,) = client.search_candidates("Estufa Fria")
    assert candidate.categories == ("Estufa Fria", "Parque Eduardo VII")
    assert len(commons_server.api_requests()) == 1


def test_a_wiki_without_geodata_is_noted_once_and_searched_without_coordinates(
    commons_server, caplog
):
    from image_ranking.commons import answers as client_module

    client_module._WITHOUT_GEODATA.discard(commons_server.api_url)
    commons_server.geodata = False
    commons_server.set_results("Belem", [commons_server.add_file("B.jpg", jpeg_bytes("rocket"))])
    client = get_commons_client()
    with caplog.at_level("WARNING"):
        for _ in range(3):
            (candidate,) = client.search_candidates("Belem")
    assert candidate.latitude is None
    notes = [r for r in caplog.records if "has no GeoData" in r.getMessage()]
    assert len(notes) == 1
    props = [r.query["prop"] for r in commons_server.api_requests()]
    assert props == [
        "imageinfo|categories|coordinates",
        "imageinfo|categories",
        "imageinfo|categories",
    ]
    assert not client_module.has_geodata(commons_server.api_url)
    client_module._WITHOUT_GEODATA.discard(commons_server.api_url)
