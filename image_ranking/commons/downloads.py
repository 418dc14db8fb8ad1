"""Safe image downloads into memory: allow-listed origins only, size-capped, polite, bounded.

Why: thumbnail and original URLs come from a remote answer; a redirect or a crafted URL
must never make a worker fetch from elsewhere (SSRF), and a 100-megapixel original must not
fill memory. Nothing is written to disk. Every request goes through the shared
`media_limiter()` (at most two downloads in flight across all workers) and runs under a real
wall-clock deadline (`transport.Deadline`), capped by the POI's time budget.

A transient fault (connection reset, body cut short, 5xx, timeout) is retried a few times
with a short backoff; a permanent one (4xx, not an image, over the cap, off the allow-list)
is not. `DownloadError.transient` tells the caller which kind it got. A 429/503 pauses every
worker for its Retry-After (at most an hour); an unusable Retry-After (inf, nan, -5, garbage)
is a transient fault of that download alone, retried with the backoff and never stored.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings

from image_ranking.commons import budget
from image_ranking.commons.etiquette import (
    BadRetryAfter,
    retry_after_seconds,
    slot_wait_message,
    user_agent,
)
from image_ranking.commons.ratelimit import RateLimitTimeout, ToldToWait, media_limiter
from image_ranking.commons.transport import (
    REDIRECT_STATUSES,
    Deadline,
    new_session,
    origin_of,
    socket_timeouts,
)

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
CHUNK = 64 * 1024


class DownloadError(Exception):
    """A download that failed; `reason` is short and stable: origin_not_allowed, too_large,
    not_image, http_error, rate_limited, timeout, truncated, too_many_redirects.

    `transient` is True when trying again later might work (the file "could not be fetched"),
    False when the answer itself was unusable (e.g. "not an image").
    """

    def __init__(self, reason: str, message: str, *, transient: bool = False) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.transient = transient


def is_allowed(url: str) -> bool:
    """Whether `url` is on one of `IMAGE_DOWNLOAD_ORIGINS` (scheme, host and port exact)."""
    if not urlsplit(url).hostname:
        return False
    return origin_of(url) in {origin_of(o) for o in settings.IMAGE_DOWNLOAD_ORIGINS}


def fetch_image_bytes(
    url: str,
    *,
    max_bytes: int,
    timeout: float = 20.0,
    attempts: int = 3,
    max_wait: float = 120.0,
    retries: int = 2,
    backoff: float = 0.5,
) -> bytes:
    """The image at `url` as bytes, following redirects only inside the allow-list.

    `timeout` bounds each attempt in wall-clock time (connect, every redirect hop and the
    body), never beyond the POI's time budget; waiting for a limiter slot is not counted.
    `attempts` bounds the rounds a 429/503 Retry-After may cause, `retries` the extra tries
    after a transient fault (backoff doubling from `backoff` s).
    Raises DownloadError; a URL or redirect leaving the allow-list is never requested.
    """
    told_to_wait = 1
    retried = 0
    while True:
        try:
            return _attempt(url, max_bytes=max_bytes, timeout=timeout, max_wait=max_wait)
        except ToldToWait as told:  # the limiter has paused every worker
            if told_to_wait >= attempts or told.seconds > max_wait:
                raise DownloadError(
                    "rate_limited",
                    f"{url}: server asked to wait {told.seconds:.0f} s",
                    transient=True,
                ) from None
            told_to_wait += 1
        except DownloadError as error:
            delay = backoff * 2**retried
            left = budget.remaining()
            if (
                not error.transient
                or error.reason == "rate_limited"  # the limiter already waited all it may
                or retried >= retries
                or (left is not None and left <= delay)
            ):
                raise
            retried += 1
            logger.info("Download retry %d/%d in %.1f s: %s", retried, retries, delay, error)
            time.sleep(delay)


def _attempt(url: str, *, max_bytes: int, timeout: float, max_wait: float) -> bytes:
    """One try: up to MAX_REDIRECTS hops, each checked before it is fetched, in one deadline."""
    limiter = media_limiter()
    network = timeout  # seconds of network time this attempt may still use
    for _hop in range(MAX_REDIRECTS + 1):
        if not is_allowed(url):
            raise DownloadError("origin_not_allowed", f"{origin_of(url) or url} not allowed")
        with ExitStack() as stack:
            started = time.monotonic()
            try:
                stack.enter_context(limiter.slot(max_wait=max_wait))
            except (RateLimitTimeout, budget.BudgetExhausted) as exc:
                message = slot_wait_message(limiter, time.monotonic() - started, exc)
                raise DownloadError("rate_limited", message, transient=True) from exc
            hop_started = time.monotonic()
            location = _get(url, max_bytes=max_bytes, seconds=network)
            network -= time.monotonic() - hop_started
        if isinstance(location, bytes):
            return location
        url = urljoin(url, location)
    raise DownloadError("too_many_redirects", f"more than {MAX_REDIRECTS} at {url}")


def _get(url: str, *, max_bytes: int, seconds: float) -> bytes | str:
    """One request within `seconds`: the body, or the Location of a redirect."""
    deadline = Deadline(seconds)
    if deadline.expired:
        raise DownloadError("timeout", f"{url}: {deadline.describe()}", transient=True)
    with deadline, new_session() as session:
        try:
            response = session.get(
                url,
                # No API token here: media servers don't need it, so it never leaves the API.
                headers={"User-Agent": user_agent(), "Accept-Encoding": "gzip"},
                timeout=socket_timeouts(deadline),
                allow_redirects=False,
                stream=True,
            )
        except requests.RequestException as exc:
            if deadline.passed or isinstance(exc, requests.Timeout):
                raise DownloadError(
                    "timeout", f"{url}: {deadline.describe()}", transient=True
                ) from exc
            raise DownloadError("http_error", f"{url}: {exc}", transient=True) from exc
        with response:
            return _answer(response, url, max_bytes, deadline)


def _answer(
    response: requests.Response, url: str, max_bytes: int, deadline: Deadline
) -> bytes | str:
    status = response.status_code
    if status in REDIRECT_STATUSES:
        location = response.headers.get("Location")
        if not location:
            raise DownloadError("http_error", f"{url}: redirect without Location")
        return location
    if status == 429 or (status == 503 and "Retry-After" in response.headers):
        try:
            wait = retry_after_seconds(response, 5.0)
        except BadRetryAfter as bad:
            logger.warning(
                "Download %s: HTTP %d with %s; a fault of this download, not a wait for every "
                "worker",
                url,
                status,
                bad,
            )
            raise DownloadError(
                "http_error", f"{url}: HTTP {status} with {bad}", transient=True
            ) from None
        raise ToldToWait(wait)
    if status >= 500:
        raise DownloadError("http_error", f"{url}: HTTP {status}", transient=True)
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
    response: requests.Response,
    url: str,
    max_bytes: int,
    deadline: Deadline,
    declared: str | None,
) -> bytes:
    body = bytearray()
    try:
        for chunk in response.iter_content(CHUNK):
            body += chunk
            if len(body) > max_bytes:
                raise DownloadError("too_large", f"{url}: more than cap {max_bytes} bytes")
    except (requests.RequestException, OSError) as exc:
        if deadline.passed or isinstance(exc, requests.Timeout):
            raise DownloadError(
                "timeout",
                f"{url}: {deadline.describe()} ({len(body)} bytes arrived)",
                transient=True,
            ) from exc
        raise DownloadError(
            "truncated", f"{url}: connection ended early ({exc})", transient=True
        ) from exc
    if deadline.passed:
        raise DownloadError(
            "timeout", f"{url}: {deadline.describe()} ({len(body)} bytes arrived)", transient=True
        )
    if declared and declared.isdigit() and len(body) < int(declared):
        raise DownloadError("truncated", f"{url}: {len(body)} of {declared} bytes", transient=True)
    return bytes(body)
