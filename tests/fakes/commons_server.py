"""A Wikimedia Commons stand-in served over real HTTP on 127.0.0.1, for tests.

Why: the client, the downloads and the rate limiter must be tested through real sockets,
with Commons' real JSON shapes and faults, but tests never reach the internet.

Fixtures (registered by `pytest_plugins` in tests/conftest.py):
- `commons_server`: a running `CommonsServer`; it also sets `settings.WIKIMEDIA_API_URL`,
  `settings.IMAGE_DOWNLOAD_ORIGINS = [server.origin]` and `settings.WIKIMEDIA_RATE_PER_HOUR = 0`
  (the shared limiter off, so tests don't wait; limiter tests set their own rate).
- `outside_server`: a second `CommonsServer` on another port, NOT in the allow-list, for
  "a redirect leaving IMAGE_DOWNLOAD_ORIGINS is never fetched" (assert `outside.requests == []`).

Files and search results:
    f = server.add_file("Torre de Belem.jpg", jpeg_bytes("coffee"))   # bytes, PIL image or
    svg = server.add_file("Map.svg", photo("coffee"), mime="image/svg+xml")  # non-photo file
    dup = server.add_file("Copy.jpg", f.data)                            # same sha1
    bad = server.add_file("Broken.jpg", photo("rocket"), damage="truncated")  # or "not_image"
    server.set_results("Torre de Belém", [f, svg, dup])   # search rank order; query text is
                                                            # the POI name after "filetype:bitmap "
    server.url_for_thumb(f, 330), server.url_for_original(f)
Each file: `title` ("File:..."), `data`, `mime`, `width`, `height`, `sha1`, `coords`.
Thumbnails exist only at the standard widths (others -> 429 "Use thumbnail steps", wider
than the original -> 400) and are rendered from the registered image.

Hostile but legal thumbnails: `server.add_oversized("Huge.png", "PNG", side=7000)` registers
a side x side PNG, WEBP, GIF or JPEG (`oversized_image`: a real photo enlarged in blocks, a
few hundred KB; the GIF about 4.6 MB) that the API describes as 400x400 px, so the answer's
500px `thumburl` is the original, served as it is: what the client fetches is 7000x7000.

Faults (`kind`), per search query (`query=`), per path (`path=`) or for every request:
    server.fail_next(kind, count=1, retry_after=None, query=None, path=None, delay=None,
                     location=None, status=None, rate=None, target=None, size=None)
    server.fail_always(kind, ...)      # until server.clear_faults()
`retry_after`: a number (sent as whole seconds) or a string sent verbatim ("inf", "nan",
"-5", "soon", an HTTP date).
API kinds: "429", "503" (Retry-After when `retry_after` is given), "maxlag" (HTTP 200 error
JSON + Retry-After), "api_error" (HTTP 200 error JSON), "html" (HTML error page, status 502
unless `status`), "malformed_json", "empty", "slow" (`delay` seconds, capped at 10),
"warnings" (normal answer plus an unknown-parameter warning), "gzip_bomb" (a valid JSON
answer padded with spaces to `size` bytes, default 1 GiB, sent gzip-encoded whatever the
client accepts: 1 GiB is a 1.0 MB body, 300 MB a 300 KB one; see `gzip_bomb`).
Media kinds (used when `path=` is given or the kind is media-only): the same HTTP ones, plus
"truncated" (connection closed halfway through the body), "not_image" (garbage bytes served
as image/jpeg), "redirect" (302 to `location`, default the same path again = a loop).
API or media (pass `target="api"` or `"media"` to choose; "redirect" with `target="api"` sends
the API's own request elsewhere): "trickle" (the real answer, its body sent at `rate` bytes/s,
default 256, for at most 60 s), "reset" (the connection is reset before any answer).

Request log: `server.requests` (RequestRecord: time, method, path, query, headers, target,
fault = the injected fault kind it got, `search_text` = the query after "filetype:bitmap "),
`server.api_requests(query=None)`, `server.media_requests()`, `server.max_in_flight[target]`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
from PIL import Image

from tests.fakes.images import PHOTO_NAMES, encode, photo

API_PATH = "/w/api.php"
THUMB_STEPS = (20, 40, 60, 120, 250, 330, 500, 960, 1280, 1920, 3840)
RASTER_MIMES = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/tiff"}
MEDIA_ONLY_KINDS = {"truncated", "not_image", "redirect"}
FAULT_KINDS = {"429", "503", "maxlag", "api_error", "html", "malformed_json", "empty", "slow"}
FAULT_KINDS |= {"warnings", "trickle", "reset", "gzip_bomb"} | MEDIA_ONLY_KINDS
MAX_DELAY = 10.0
GZIP_BOMB_SIZE = 1 << 30
OVERSIZED_DESCRIBED = 400  # px: what the API says an oversized file measures
MAX_TRICKLE_SECONDS = 60.0
TRICKLE_TICK = 0.125
_ENCODERS = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/tiff": "TIFF",
}


@dataclass
class FakeFile:
    """One file page of the File namespace with its bytes."""

    title: str
    data: bytes
    mime: str
    width: int
    height: int
    coords: tuple[float, float] | None
    pageid: int
    preview: Image.Image | None = field(default=None, repr=False)
    thumberror: bool = False  # Commons could not render a thumbnail: `thumberror`, no thumburl
    categories: list[str] = field(default_factory=list)  # visible ones, without "Category:"
    hidden_categories: list[str] = field(default_factory=list)  # maintenance categories

    @property
    def name(self) -> str:
        return self.title.removeprefix("File:").replace(" ", "_")

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.data).hexdigest()

    @property
    def hash_dir(self) -> str:
        digest = hashlib.md5(self.name.encode()).hexdigest()
        return f"{digest[0]}/{digest[:2]}"

    @property
    def path(self) -> str:
        return f"/{self.hash_dir}/{quote(self.name)}"

    def thumb_name(self, width: int) -> str:
        if self.mime == "image/tiff":
            return f"lossy-page1-{width}px-{self.name}.jpg"
        if self.mime == "image/svg+xml":
            return f"{width}px-{self.name}.png"
        if self.mime in {"application/pdf", "image/vnd.djvu"}:
            return f"page1-{width}px-{self.name}.jpg"
        return f"{width}px-{self.name}"

    def thumb_path(self, width: int) -> str:
        return f"/thumb/{self.hash_dir}/{quote(self.name)}/{quote(self.thumb_name(width))}"


@dataclass
class RequestRecord:
    time: float
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    target: str  # "api", "media" or "page"
    fault: str | None = None  # the injected fault this request was answered with

    @property
    def search_text(self) -> str | None:
        search = self.query.get("gsrsearch")
        return None if search is None else search.removeprefix("filetype:bitmap ")


@dataclass
class Fault:
    kind: str
    count: int | None
    target: str
    retry_after: float | str | None = None
    query: str | None = None
    path: str | None = None
    delay: float | None = None
    location: str | None = None
    status: int | None = None
    rate: float | None = None
    size: int | None = None  # gzip_bomb: decoded bytes


@lru_cache(maxsize=8)
def oversized_image(fmt: str, side: int = 7000, seed: int = 0) -> bytes:
    """A side x side image in `fmt` (PNG, WEBP, GIF, JPEG) that is small as a file: a real photo
    (turned by 5 degrees a seed) shrunk to 175 px and enlarged in blocks (the GIF on a palette
    of its own), e.g. 274 KB as a 7000x7000 PNG. Legal, but decoded at full size it takes about
    150-200 MB."""
    small = photo(PHOTO_NAMES[seed % len(PHOTO_NAMES)]).rotate(seed * 5).resize((175, 175))
    if fmt == "GIF":
        small = small.convert("P", palette=Image.Palette.ADAPTIVE)
    return encode(small.resize((side, side), Image.Resampling.NEAREST), fmt)


@lru_cache(maxsize=4)
def gzip_bomb(size: int = GZIP_BOMB_SIZE) -> bytes:
    """A gzip body that decodes to a valid, empty search answer of `size` bytes: the JSON with
    a string of spaces. Deflate packs at most about 1,030:1, so 1 GiB is a 1.0 MB body."""
    head = b'{"batchcomplete":true,"query":{"pages":[]},"padding":"'
    tail = b'"}'
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip member
    parts = [packer.compress(head)]
    spaces = max(0, size - len(head) - len(tail))
    block = b" " * (1 << 20)
    while spaces > 0:
        parts.append(packer.compress(block[: min(spaces, len(block))]))
        spaces -= len(block)
    parts += [packer.compress(tail), packer.flush()]
    return b"".join(parts)


def _placeholder_bytes(mime: str, width: int, height: int) -> bytes:
    """Real-looking bytes for non-raster files (their content is never decoded by tests)."""
    if mime == "image/svg+xml":
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
            f'<rect width="{width}" height="{height}" fill="#369"/></svg>'
        ).encode()
    if mime == "application/pdf":
        return b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    return b"AT&TFORM\x00\x00\x00\x10DJVUINFO"


class CommonsServer:
    """The stand-in itself: start(), stop(), files, results, faults and the request log."""

    def __init__(self) -> None:
        self.files: dict[str, FakeFile] = {}
        self.results: dict[str, list[FakeFile]] = {}
        self.faults: list[Fault] = []
        # False = a wiki without the GeoData extension: prop=coordinates is unknown there.
        self.geodata = True
        self.requests: list[RequestRecord] = []
        self.in_flight = {"api": 0, "media": 0, "page": 0}
        self.max_in_flight = {"api": 0, "media": 0, "page": 0}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thumb_cache: dict[tuple[str, int], bytes] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self, port: int = 0) -> CommonsServer:
        """Listen on 127.0.0.1 (`port` 0: a free one) in a background thread."""
        handler = type("Handler", (_Handler,), {"stand_in": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def origin(self) -> str:
        assert self._httpd, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.origin + API_PATH

    # --- content ---------------------------------------------------------------------------
    def add_file(
        self,
        title: str,
        image: bytes | Image.Image,
        *,
        mime: str | None = None,
        coords: tuple[float, float] | None = None,
        width: int | None = None,
        height: int | None = None,
        damage: str | None = None,
        categories: list[str] | None = None,
        hidden_categories: list[str] | None = None,
    ) -> FakeFile:
        """Register a file. `image`: encoded bytes or a PIL image (encoded as `mime`).

        `damage`: "truncated" (the stored bytes stop halfway) or "not_image" (garbage bytes);
        the API still describes the file as a normal image, as Commons would.
        """
        title = "File:" + title.removeprefix("File:").replace("_", " ")
        preview = None
        if isinstance(image, Image.Image):
            mime = mime or "image/jpeg"
            preview = image
            width, height = image.size
            data = (
                encode(image, _ENCODERS[mime])
                if mime in _ENCODERS
                else _placeholder_bytes(mime, width, height)
            )
        else:
            data = image
            try:
                with Image.open(io.BytesIO(data)) as opened:
                    width = width or opened.width
                    height = height or opened.height
                    mime = mime or Image.MIME.get(opened.format or "", None)
            except Exception:
                if not (width and height and mime):
                    raise ValueError("undecodable bytes need mime, width and height") from None
        if damage == "truncated":
            data = data[: len(data) // 2]
        elif damage == "not_image":
            data = b"<html><body>" + hashlib.sha256(data).hexdigest().encode() * 40
        elif damage is not None:
            raise ValueError(f"unknown damage {damage!r}")
        pageid = int(hashlib.sha1(title.encode()).hexdigest()[:7], 16)
        file = FakeFile(
            title, data, mime or "image/jpeg", width, height, coords, pageid, preview,
            categories=list(categories or []), hidden_categories=list(hidden_categories or []),
        )  # fmt: skip
        with self._lock:
            self.files[file.name] = file
        return file

    def add_oversized(self, title: str, fmt: str, side: int = 7000, seed: int = 0) -> FakeFile:
        """A hostile but legal "thumbnail": a side x side `fmt` file that the API describes as
        400x400 px, so the client fetches the original as its 500px rendition."""
        size = OVERSIZED_DESCRIBED
        return self.add_file(title, oversized_image(fmt, side, seed), width=size, height=size)

    def set_results(self, query_text: str, files: list[FakeFile]) -> None:
        """The files a search for `query_text` finds, best first."""
        with self._lock:
            self.results[query_text] = list(files)

    def url_for_thumb(self, file: FakeFile, width: int) -> str:
        return self.origin + file.thumb_path(width)

    def url_for_original(self, file: FakeFile) -> str:
        return self.origin + file.path

    # --- faults ----------------------------------------------------------------------------
    def fail_next(self, kind: str, count: int | None = 1, **options) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {sorted(FAULT_KINDS)}")
        target = options.pop("target", None)
        if target is None:
            target = "media" if options.get("path") or kind in MEDIA_ONLY_KINDS else "api"
        with self._lock:
            self.faults.append(Fault(kind, count, target, **options))

    def fail_always(self, kind: str, **options) -> None:
        self.fail_next(kind, None, **options)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take_fault(self, record: RequestRecord) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.target != record.target:
                    continue
                if fault.query is not None and fault.query != record.search_text:
                    continue
                if fault.path is not None and fault.path != record.path:
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    # --- log -------------------------------------------------------------------------------
    def api_requests(self, query: str | None = None) -> list[RequestRecord]:
        return [
            r
            for r in list(self.requests)
            if r.target == "api" and (query is None or r.search_text == query)
        ]

    def media_requests(self) -> list[RequestRecord]:
        return [r for r in list(self.requests) if r.target == "media"]

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(min(seconds, MAX_DELAY))

    # --- API answers -----------------------------------------------------------------------
    def search_answer(self, params: dict[str, str]) -> dict:
        """The JSON Commons gives for action=query&generator=search&prop=imageinfo|coordinates."""
        if params.get("action") == "query" and "titles" in params and "generator" not in params:
            return self._titles_answer(params)
        if params.get("action") != "query" or params.get("generator") != "search":
            return {"error": {"code": "badvalue", "info": "Only generator=search is faked."}}
        search = params.get("gsrsearch", "")
        bitmap_only = search.startswith("filetype:bitmap ")
        text = search.removeprefix("filetype:bitmap ")
        hits = list(self.results.get(text, [])) if params.get("gsrnamespace") == "6" else []
        if bitmap_only:
            hits = [f for f in hits if f.mime.startswith("image/") and f.mime != "image/svg+xml"]
        offset = int(params.get("gsroffset", 0))
        limit = min(int(params.get("gsrlimit", 10)), 500)
        page_hits = hits[offset : offset + limit]
        answer: dict = {"batchcomplete": True}
        if len(hits) > offset + limit:
            answer["continue"] = {"gsroffset": offset + limit, "continue": "gsroffset||"}
        if not page_hits:
            return answer if "continue" in answer else {"batchcomplete": True}
        props = set(params.get("prop", "").split("|"))
        iiprop = set(params.get("iiprop", "timestamp|user").split("|"))
        pages = []
        for rank, file in enumerate(page_hits, start=offset + 1):
            page: dict = {"pageid": file.pageid, "ns": 6, "title": file.title, "index": rank}
            if "imageinfo" in props:
                page["imagerepository"] = "local"
                page["imageinfo"] = [self._imageinfo(file, iiprop, params.get("iiurlwidth"))]
            pages.append(page)
        pages.sort(key=lambda p: p["pageid"])  # Commons lists pages by id, not by rank
        if "categories" in props:
            hidden_only = params.get("clshow") == "hidden"
            show_hidden = params.get("clshow") != "!hidden"
            for page in pages:
                file = self.files[_name(page["title"])]
                names = [] if hidden_only else list(file.categories)
                names += file.hidden_categories if show_hidden else []
                if names:
                    page["categories"] = [{"ns": 14, "title": f"Category:{n}"} for n in names]
        if "coordinates" in props and not self.geodata:
            answer["warnings"] = {
                "main": {"warnings": 'Unrecognized value for parameter "prop": coordinates.'}
            }
        elif "coordinates" in props:
            colimit = params.get("colimit", "10")
            limit_co = 500 if colimit == "max" else int(colimit)
            with_coords = [p for p in pages if self.files[_name(p["title"])].coords]
            for page in with_coords[:limit_co]:
                lat, lon = self.files[_name(page["title"])].coords
                page["coordinates"] = [{"lat": lat, "lon": lon, "primary": True, "globe": "earth"}]
            if len(with_coords) > limit_co:
                answer.setdefault("continue", {})["cocontinue"] = (
                    f"{with_coords[limit_co]['pageid']}|0"
                )
        answer["query"] = {"pages": pages}
        if params.get("formatversion") != "2":
            answer = _formatversion1(answer)
        return answer

    def _titles_answer(self, params: dict[str, str]) -> dict:
        """action=query&titles=File:A|File:B: those pages (no search rank), missing ones
        marked `missing` as Commons does."""
        props = set(params.get("prop", "").split("|"))
        iiprop = set(params.get("iiprop", "timestamp|user").split("|"))
        pages = []
        for title in params["titles"].split("|"):
            file = self.files.get(_name(title))
            if file is None:
                pages.append({"ns": 6, "title": title.replace("_", " "), "missing": True})
                continue
            page: dict = {"pageid": file.pageid, "ns": 6, "title": file.title}
            if "imageinfo" in props:
                page["imageinfo"] = [self._imageinfo(file, iiprop, params.get("iiurlwidth"))]
            if "categories" in props and file.categories:
                page["categories"] = [{"ns": 14, "title": f"Category:{n}"} for n in file.categories]
            if "coordinates" in props and file.coords and self.geodata:
                lat, lon = file.coords
                page["coordinates"] = [{"lat": lat, "lon": lon, "primary": True, "globe": "earth"}]
            pages.append(page)
        return {"batchcomplete": True, "query": {"pages": pages}}

    def _imageinfo(self, file: FakeFile, iiprop: set[str], iiurlwidth: str | None) -> dict:
        info: dict = {}
        if "size" in iiprop:
            info.update(size=len(file.data), width=file.width, height=file.height)
        if "url" in iiprop:
            if iiurlwidth and file.thumberror:
                info["thumberror"] = "Error creating thumbnail: File with dimensions > 12.5 MP"
            elif iiurlwidth:
                asked = int(iiurlwidth)
                step = next((s for s in THUMB_STEPS if s >= asked), THUMB_STEPS[-1])
                if file.mime in RASTER_MIMES and step >= file.width and file.mime != "image/tiff":
                    info.update(
                        thumburl=self.url_for_original(file),
                        thumbwidth=file.width,
                        thumbheight=file.height,
                    )
                else:
                    info.update(
                        thumburl=self.url_for_thumb(file, step),
                        thumbwidth=asked,  # Commons reports the width asked for, not the step
                        thumbheight=round(file.height * asked / file.width),
                    )
            info.update(
                url=self.url_for_original(file),
                descriptionurl=f"{self.origin}/wiki/File:{quote(file.name)}",
                descriptionshorturl=f"{self.origin}/w/index.php?curid={file.pageid}",
            )
        if "mime" in iiprop:
            info["mime"] = file.mime
        if "sha1" in iiprop:
            info["sha1"] = file.sha1
        return info

    # --- media -----------------------------------------------------------------------------
    def media_answer(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for an original or a thumbnail path."""
        parts = unquote(path).strip("/").split("/")
        if parts[0] == "thumb" and len(parts) == 5:
            file = self.files.get(parts[3])
            match = re.search(r"(?:^|-)(\d+)px-", parts[4])
            if file is None or match is None or parts[4] != file.thumb_name(int(match[1])):
                return 404, "text/html", b"<html><body><h1>404 Not Found</h1></body></html>"
            width = int(match[1])
            if width not in THUMB_STEPS:
                return 429, "text/html", b"<html><body>Use thumbnail steps</body></html>"
            if file.mime in RASTER_MIMES and width >= file.width:
                body = b"<html><body>Error generating thumbnail: image is smaller</body></html>"
                return 400, "text/html", body
            return self._thumbnail(file, width)
        if len(parts) == 3 and (file := self.files.get(parts[2])) is not None:
            return 200, file.mime, file.data
        return 404, "text/html", b"<html><body><h1>404 Not Found</h1></body></html>"

    def _thumbnail(self, file: FakeFile, width: int) -> tuple[int, str, bytes]:
        key = (file.name, width)
        if key not in self._thumb_cache:
            source = file.preview
            if source is None:
                try:
                    source = Image.open(io.BytesIO(file.data))
                    source.load()
                except Exception:
                    # A damaged original gives a damaged thumbnail too.
                    return 200, _thumb_mime(file), file.data
            height = max(1, round(source.height * width / source.width))
            thumb = source.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
            self._thumb_cache[key] = encode(thumb, _ENCODERS[_thumb_mime(file)])
        return 200, _thumb_mime(file), self._thumb_cache[key]


def _thumb_mime(file: FakeFile) -> str:
    if file.mime in {"image/jpeg", "image/png", "image/gif", "image/webp"}:
        return file.mime
    return "image/png" if file.mime == "image/svg+xml" else "image/jpeg"


def _name(title: str) -> str:
    return title.removeprefix("File:").replace(" ", "_")


def _formatversion1(answer: dict) -> dict:
    """formatversion=1: pages keyed by page id, booleans as empty strings."""
    answer = dict(answer, batchcomplete="")
    if "query" in answer:
        answer["query"] = {"pages": {str(p["pageid"]): p for p in answer["query"]["pages"]}}
    return answer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stand_in: CommonsServer

    def log_message(self, format: str, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        server = self.stand_in
        split = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        if split.path == API_PATH:
            target = "api"
        elif split.path.startswith("/wiki/"):
            target = "page"
        else:
            target = "media"
        record = RequestRecord(
            time.time(), "GET", split.path, params, dict(self.headers.items()), target
        )
        with server._lock:
            server.requests.append(record)
            server.in_flight[target] += 1
            server.max_in_flight[target] = max(
                server.max_in_flight[target], server.in_flight[target]
            )
        fault = server._take_fault(record)
        record.fault = fault.kind if fault else None
        try:
            self._answer(record, fault)
        finally:
            with server._lock:
                server.in_flight[target] -= 1

    def _answer(self, record: RequestRecord, fault: Fault | None) -> None:
        server = self.stand_in
        headers: dict[str, str] = {}
        if fault and isinstance(fault.retry_after, str):
            headers["Retry-After"] = fault.retry_after
        elif fault and fault.retry_after is not None:
            headers["Retry-After"] = str(int(fault.retry_after))
        kind = fault.kind if fault else None
        if kind == "slow":
            server._sleep(fault.delay or 5.0)
        if kind == "reset":
            # SO_LINGER 0: close() sends a TCP RST, as a dropped connection would.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return None
        if kind in {"429", "503"}:
            body = b"<html><body><h1>Too many requests</h1></body></html>"
            return self._send(int(kind), "text/html", body, headers)
        if kind == "html":
            body = b"<!DOCTYPE html><html><head><title>Wikimedia Error</title></head></html>"
            return self._send(fault.status or 502, "text/html; charset=utf-8", body, headers)
        if kind == "empty":
            return self._send(200, "application/json; charset=utf-8", b"", headers)
        if kind == "redirect":
            headers["Location"] = fault.location or record.path
            return self._send(302, "text/html", b"", headers)
        if record.target == "page":
            return self._send(200, "text/html", b"<html><body>File page</body></html>", headers)
        if record.target == "media":
            return self._media(record, fault, headers)
        if kind == "malformed_json":
            body = b'{"batchcomplete":true,"query":{"pages":[{"pageid":1,"title":"File:'
            return self._send(200, "application/json; charset=utf-8", body, headers)
        if kind == "gzip_bomb":
            headers["Content-Encoding"] = "gzip"
            body = gzip_bomb(fault.size or GZIP_BOMB_SIZE)
            return self._send(200, "application/json; charset=utf-8", body, headers)
        if kind == "maxlag":
            headers.setdefault("Retry-After", "5")
            headers["X-Database-Lag"] = "7"
            answer = {
                "error": {
                    "code": "maxlag",
                    "info": "Waiting for 10.64.16.8: 7 seconds lagged.",
                    "host": "10.64.16.8",
                    "lag": 7,
                    "type": "db",
                },
                "servedby": "mw-api-ext.fake",
            }
        elif kind == "api_error":
            answer = {"error": {"code": "internal_api_error_DBQueryError", "info": "[fake] DB"}}
        else:
            answer = server.search_answer(record.query)
            if kind == "warnings":
                answer["warnings"] = {"main": {"warnings": 'Unrecognized parameter: "colimit".'}}
        body = json.dumps(answer, ensure_ascii=False).encode()
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        self._send(200, "application/json; charset=utf-8", body, headers, rate=self._rate(fault))

    @staticmethod
    def _rate(fault: Fault | None) -> float | None:
        return (fault.rate or 256.0) if fault and fault.kind == "trickle" else None

    def _media(self, record: RequestRecord, fault: Fault | None, headers: dict) -> None:
        status, content_type, body = self.stand_in.media_answer(record.path)
        kind = fault.kind if fault else None
        if kind == "not_image" and status == 200:
            body = b"\x00garbage that is not an image" * 64
        if kind == "truncated" and status == 200:
            return self._send(status, content_type, body, headers, cut_at=len(body) // 2)
        self._send(status, content_type, body, headers, rate=self._rate(fault))

    def _send(
        self,
        status: int,
        content_type: str,
        body: bytes,
        headers: dict[str, str],
        cut_at: int | None = None,
        rate: float | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        if cut_at is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            if rate is not None:
                return self._trickle(body, rate)
            self.wfile.write(body if cut_at is None else body[:cut_at])
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _trickle(self, body: bytes, rate: float) -> None:
        """Send `body` at `rate` bytes/s until done, the client leaves or the server stops."""
        step = max(1, int(rate * TRICKLE_TICK))
        started = time.monotonic()
        for start in range(0, len(body), step):
            if self.stand_in._stopping.is_set() or time.monotonic() - started > MAX_TRICKLE_SECONDS:
                self.close_connection = True
                return
            self.wfile.write(body[start : start + step])
            self.wfile.flush()
            self.stand_in._stopping.wait(TRICKLE_TICK)


@pytest.fixture
def commons_server(settings):
    """A running Commons stand-in; the app's settings point to it, the shared limiter is off."""
    from image_ranking.commons.ratelimit import reset_local_limits

    reset_local_limits()
    server = CommonsServer().start()
    settings.WIKIMEDIA_API_URL = server.api_url
    settings.IMAGE_DOWNLOAD_ORIGINS = [server.origin]
    settings.WIKIMEDIA_RATE_PER_HOUR = 0
    yield server
    server.stop()
    reset_local_limits()


@pytest.fixture
def outside_server():
    """A second origin that is NOT in IMAGE_DOWNLOAD_ORIGINS: nothing may ever reach it."""
    server = CommonsServer().start()
    yield server
    server.stop()
