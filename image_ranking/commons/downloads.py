"""Safe image downloads into memory: allow-listed origins only, size-capped, polite.

Why: thumbnail and original URLs come from a remote answer; a redirect or a crafted URL
must never make a worker fetch from elsewhere (SSRF), and a 100-megapixel original must not
fill memory. Nothing is written to disk. Every request goes through the shared
`media_limiter()` (at most two downloads in flight across all workers).
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings

from image_ranking.commons.client import retry_after_seconds, user_agent
from image_ranking.commons.ratelimit import RateLimitTimeout, media_limiter

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
CHUNK = 64 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}


class DownloadError(Exception):
    """A download that failed; `reason` is short and stable: origin_not_allowed, too_large,
    not_image, http_error, rate_limited, timeout, truncated, too_many_redirects."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def origin_of(url: str) -> str:
    """scheme://host:port with the default port made explicit, for exact comparison."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return ""
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def is_allowed(url: str) -> bool:
    """Whether `url` is on one of `IMAGE_DOWNLOAD_ORIGINS` (scheme, host and port exact)."""
    if not urlsplit(url).hostname:
        return False
    return origin_of(url) in {origin_of(o) for o in settings.IMAGE_DOWNLOAD_ORIGINS}


def fetch_image_bytes(
    url: str, *, max_bytes: int, timeout: float = 20.0, attempts: int = 3, max_wait: float = 120.0
) -> bytes:
    """The image at `url` as bytes, following redirects only inside the allow-list.

    `timeout` bounds the whole download (connect, every redirect hop and the body).
    Raises DownloadError; a URL or redirect leaving the allow-list is never requested.
    """
    deadline = time.monotonic() + timeout
    limiter = media_limiter()
    hops = 0
    attempt = 1
    while True:
        if not is_allowed(url):
            raise DownloadError("origin_not_allowed", f"{origin_of(url) or url} not allowed")
        try:
            with limiter.slot(max_wait=max_wait):
                outcome = _get(url, max_bytes=max_bytes, deadline=deadline)
        except RateLimitTimeout as exc:
            raise DownloadError("rate_limited", str(exc)) from exc
        if isinstance(outcome, bytes):
            return outcome
        kind, value = outcome
        if kind == "redirect":
            hops += 1
            if hops > MAX_REDIRECTS:
                raise DownloadError("too_many_redirects", f"more than {MAX_REDIRECTS} at {url}")
            url = urljoin(url, value)
            continue
        # kind == "retry": a 429/503; every worker waits as told before the next try.
        wait = float(value)
        limiter.block_until(time.time() + wait)
        if attempt >= attempts or wait > max_wait:
            raise DownloadError("rate_limited", f"{url}: server asked to wait {wait:.0f} s")
        attempt += 1
        deadline += wait  # waiting as told is not the server being slow


def _get(url: str, *, max_bytes: int, deadline: float) -> bytes | tuple[str, str | float]:
    """One request: the body, ("redirect", location) or ("retry", seconds)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DownloadError("timeout", url)
    try:
        response = requests.get(
            url,
            # No API token here: media servers don't need it, so it never leaves the API.
            headers={"User-Agent": user_agent(), "Accept-Encoding": "gzip"},
            timeout=(min(5.0, remaining), remaining),
            allow_redirects=False,
            stream=True,
        )
    except requests.Timeout as exc:
        raise DownloadError("timeout", f"{url}: {exc}") from exc
    except requests.RequestException as exc:
        raise DownloadError("http_error", f"{url}: {exc}") from exc
    with response:
        status = response.status_code
        if status in {301, 302, 303, 307, 308}:
            location = response.headers.get("Location")
            if not location:
                raise DownloadError("http_error", f"{url}: redirect without Location")
            return "redirect", location
        if status in {429, 503}:
            return "retry", retry_after_seconds(response, 5.0)
        if status != 200:
            raise DownloadError("http_error", f"{url}: HTTP {status}")
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not content_type.startswith("image/"):
            raise DownloadError("not_image", f"{url}: content type {content_type or 'missing'}")
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise DownloadError("too_large", f"{url}: {declared} bytes > cap {max_bytes}")
        return _read_capped(response, url, max_bytes, deadline, declared)


def _read_capped(
    response: requests.Response, url: str, max_bytes: int, deadline: float, declared: str | None
) -> bytes:
    body = bytearray()
    try:
        for chunk in response.iter_content(CHUNK):
            body += chunk
            if len(body) > max_bytes:
                raise DownloadError("too_large", f"{url}: more than cap {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise DownloadError("timeout", f"{url}: body too slow")
    except requests.Timeout as exc:
        raise DownloadError("timeout", f"{url}: {exc}") from exc
    except requests.RequestException as exc:
        raise DownloadError("truncated", f"{url}: connection ended early ({exc})") from exc
    if declared and declared.isdigit() and len(body) < int(declared):
        raise DownloadError("truncated", f"{url}: {len(body)} of {declared} bytes")
    return bytes(body)
