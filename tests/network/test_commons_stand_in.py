"""The stand-in itself answers like Commons (other test suites rely on these shapes)."""

from __future__ import annotations

import io
import time

import pytest
import requests
from PIL import Image

from tests.fakes.commons_server import TRICKLE_TICK
from tests.fakes.images import jpeg_bytes, photo


def _search(server, text: str, **extra) -> dict:
    params = {
        "action": "query",
        "format": "json",
        "formatversion": "2",
        "generator": "search",
        "gsrsearch": f"filetype:bitmap {text}",
        "gsrnamespace": "6",
        "gsrlimit": "10",
        "prop": "imageinfo|coordinates",
        "iiprop": "url|size|mime|sha1",
        "iiurlwidth": "330",
        "colimit": "max",
    } | extra
    return requests.get(server.api_url, params=params, timeout=5).json()


def test_pages_carry_rank_index_but_are_not_listed_in_rank_order(commons_server):
    s = commons_server
    files = [s.add_file(f"Alfama {i}.jpg", jpeg_bytes("coffee", width=400 + i)) for i in range(6)]
    s.set_results("Alfama", files)
    pages = _search(s, "Alfama")["query"]["pages"]
    ranks = [p["index"] for p in pages]
    assert sorted(ranks) == [1, 2, 3, 4, 5, 6]
    assert ranks != sorted(ranks)
    assert [p["pageid"] for p in pages] == sorted(p["pageid"] for p in pages)


def test_no_hits_has_no_query_key_and_more_hits_continue(commons_server):
    s = commons_server
    assert _search(s, "Nothing") == {"batchcomplete": True}
    s.set_results("Many", [s.add_file(f"M{i}.jpg", jpeg_bytes("chelsea")) for i in range(3)])
    answer = _search(s, "Many", gsrlimit="2")
    assert len(answer["query"]["pages"]) == 2
    assert answer["continue"]["gsroffset"] == 2


def test_bitmap_filter_drops_svg_and_pdf_but_not_tiff(commons_server):
    s = commons_server
    s.set_results(
        "Mixed",
        [
            s.add_file("A.svg", photo("rocket"), mime="image/svg+xml"),
            s.add_file("B.pdf", photo("rocket"), mime="application/pdf"),
            s.add_file("C.tif", photo("rocket"), mime="image/tiff"),
        ],
    )
    pages = _search(s, "Mixed")["query"]["pages"]
    assert [p["imageinfo"][0]["mime"] for p in pages] == ["image/tiff"]


def test_thumbnails_only_at_standard_steps_and_never_wider_than_the_original(commons_server):
    s = commons_server
    f = s.add_file("Castle.jpg", jpeg_bytes("astronaut"))  # 512 px wide
    ok = requests.get(s.url_for_thumb(f, 500), timeout=5)
    assert ok.status_code == 200
    assert Image.open(io.BytesIO(ok.content)).size == (500, 500)
    off_step = requests.get(s.url_for_thumb(f, 300), timeout=5)
    assert off_step.status_code == 429
    assert "Use thumbnail steps" in off_step.text
    assert requests.get(s.url_for_thumb(f, 960), timeout=5).status_code == 400


def test_iiurlwidth_is_rounded_up_to_a_step(commons_server):
    s = commons_server
    s.set_results("Rounded", [s.add_file("R.jpg", jpeg_bytes("coffee"))])
    info = _search(s, "Rounded", iiurlwidth="300")["query"]["pages"][0]["imageinfo"][0]
    assert info["thumburl"].endswith("/330px-R.jpg")
    assert info["thumbwidth"] == 300  # Commons reports the width asked for


def test_maxlag_is_an_error_json_with_status_200(commons_server):
    commons_server.fail_next("maxlag", retry_after=3)
    response = requests.get(commons_server.api_url, params={"action": "query"}, timeout=5)
    assert response.status_code == 200
    assert response.headers["Retry-After"] == "3"
    assert response.json()["error"]["code"] == "maxlag"


def test_trickle_sends_the_real_body_at_the_rate_asked(commons_server):
    small = commons_server.add_file("Small.jpg", jpeg_bytes("coffee", width=40))
    commons_server.fail_next("trickle", path=small.path, rate=2048)
    started = time.monotonic()
    body = requests.get(commons_server.url_for_original(small), timeout=10).content
    elapsed = time.monotonic() - started
    assert body == small.data
    assert elapsed >= 0.8 * len(body) / 2048 - TRICKLE_TICK


def test_reset_drops_the_connection_before_any_answer(commons_server):
    tower = commons_server.add_file("Tower.jpg", jpeg_bytes("coffee"))
    commons_server.fail_next("reset", path=tower.path)
    with pytest.raises(requests.ConnectionError):
        requests.get(commons_server.url_for_original(tower), timeout=5)
    assert requests.get(commons_server.url_for_original(tower), timeout=5).content == tower.data


def test_api_redirect_fault_answers_the_api_request_with_a_302(commons_server):
    commons_server.fail_next("redirect", target="api", location="http://elsewhere.example/")
    response = requests.get(commons_server.api_url, allow_redirects=False, timeout=5)
    assert (response.status_code, response.headers["Location"]) == (
        302,
        "http://elsewhere.example/",
    )
    assert commons_server.api_requests()[0].fault == "redirect"
