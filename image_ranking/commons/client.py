"""Wikimedia Commons candidates for a POI in ONE Action API request.

The spec's `_fetch_wikimedia_images()`, extended: a generator=search query in the File
namespace returns every candidate's URLs, size, mime, sha1, a thumbnail at a standard width
and its coordinates at once, so a POI costs one request of the 500-per-hour budget instead of
the original 11 (see wikimedia.md). All requests go through the shared `api_limiter()`.

Redirects are followed by hand and only on the API's own origin (scheme, host and port), so
the Authorization header never leaves it; each request runs under a wall-clock deadline
(`transport.Deadline`) that the POI's time budget shortens. The answer is streamed and
its decoded size (gzip undone) capped by `WIKIMEDIA_API_MAX_BYTES` before it is parsed, so a
small gzip answer that decodes to a gigabyte costs the worker no more than the cap.

`Retry-After` is trusted only when it is a finite number of seconds or an HTTP date, and at
most an hour (`MAX_RETRY_AFTER`); anything else is a fault of that one request (retried with
the usual backoff, logged), never a wait stored for every worker.

A client is cheap; use one per thread (it keeps a `requests.Session`).
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from dataclasses import replace
from typing import Any
from urllib.parse import urljoin

import requests
from django.conf import settings

from image_ranking.commons import budget
from image_ranking.commons.answers import (
    CommonsCandidate,
    candidates_from,
    file_page_title,
    has_geodata,
    note_warnings,
)
from image_ranking.commons.etiquette import (
    BadRetryAfter,
    request_headers,
    retry_after_seconds,
    slot_wait_message,
)
from image_ranking.commons.ratelimit import RateLimitTimeout, ToldToWait, api_limiter
from image_ranking.commons.renditions import standard_width
from image_ranking.commons.transport import (
    REDIRECT_STATUSES,
    Deadline,
    origin_of,
    socket_timeouts,
    watch,
)

logger = logging.getLogger(__name__)

DEFAULT_MAXLAG_WAIT = 5.0
MAX_REDIRECTS = 5
CHUNK = 64 * 1024  # the answer is read (and un-gzipped) this much at a time


class CommonsError(Exception):
    """A search that failed; `reason` is short and stable (stored and shown to curators):
    rate_limited, maxlag, http_error, bad_response, too_large, timeout, api_error,
    redirect_refused."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class _Retry(Exception):
    """A transient fault: try again after `delay` s."""

    def __init__(self, error: CommonsError, delay: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.delay = delay


class _Told(_Retry, ToldToWait):
    """The server told every worker to wait `delay` s (the limiter records it)."""

    def __init__(self, error: CommonsError, delay: float) -> None:
        ToldToWait.__init__(self, delay, str(error))
        self.error = error
        self.delay = delay


class CommonsClient:
    """Searches Commons for a POI's candidate photos; retries transient faults.

    `timeout` is (connect, total): `total` bounds each attempt in wall-clock time, headers,
    body and same-origin redirects included.
    """

    def __init__(
        self,
        api_url: str,
        *,
        thumb_width: int = 330,
        timeout: tuple[float, float] = (5.0, 30.0),
        attempts: int = 3,
        backoff: float = 2.0,
        max_wait: float = 120.0,
        max_answer_bytes: int | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.api_url = api_url
        self.thumb_width = standard_width(thumb_width)
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.max_wait = max_wait
        self.max_answer_bytes = max_answer_bytes or int(settings.WIKIMEDIA_API_MAX_BYTES)
        self.session = watch(session or requests.Session())

    def params(self, query: str, limit: int) -> dict[str, Any]:
        """One generator request: the hits with their image info, visible categories and,
        where the wiki has GeoData, coordinates (Commons returns all of it for free)."""
        props = ["imageinfo", "categories"]
        if has_geodata(self.api_url):
            props.append("coordinates")
        return {
            "action": "query",
            "format": "json",
            "formatversion": "2",
            "maxlag": "5",
            "generator": "search",
            "gsrsearch": f"filetype:bitmap {query}",
            "gsrnamespace": "6",
            "gsrlimit": str(limit),
            "prop": "|".join(props),
            "iiprop": "url|size|mime|sha1",
            "iiurlwidth": str(self.thumb_width),
            "clshow": "!hidden",
            "cllimit": "max",
            **({"colimit": "max"} if "coordinates" in props else {}),
        }

    def title_params(self, titles: list[str]) -> dict[str, Any]:
        """One request for files a curator named: the same properties as a search's."""
        params = self.params("", len(titles))
        for key in ("generator", "gsrsearch", "gsrnamespace", "gsrlimit"):
            params.pop(key)
        params["titles"] = "|".join(titles)
        return params

    def candidates_for_titles(self, titles: list[str]) -> list[CommonsCandidate]:
        """The raster photos among the File: pages `titles` (in that order), in ONE request;
        titles that do not exist are left out. Raises CommonsError when Commons cannot
        answer."""
        wanted = [file_page_title(t) for t in titles]
        found = self.search_candidates(
            "|".join(wanted), limit=len(wanted), params=self.title_params(wanted)
        )
        order = {title: rank for rank, title in enumerate(wanted, start=1)}
        ranked = [replace(c, search_rank=order.get(c.title, len(order) + 1)) for c in found]
        return sorted(ranked, key=lambda c: c.search_rank)

    def search_candidates(
        self, query: str, limit: int = 10, *, params: dict[str, Any] | None = None
    ) -> list[CommonsCandidate]:
        """Raster photos found for `query`, de-duplicated by sha1, best search rank first
        (`params` replaces the search request, for `candidates_for_titles`).

        [] when nothing matches. Raises CommonsError when Commons cannot answer.
        """
        limiter = api_limiter()
        error = CommonsError("http_error", "no attempt made")
        for attempt in range(1, self.attempts + 1):
            backoff = self.backoff * 2 ** (attempt - 1)
            try:
                with ExitStack() as stack:
                    started = time.monotonic()
                    try:
                        stack.enter_context(limiter.slot(max_wait=self.max_wait))
                    except (RateLimitTimeout, budget.BudgetExhausted) as exc:
                        message = slot_wait_message(limiter, time.monotonic() - started, exc)
                        raise CommonsError("rate_limited", message) from exc
                    payload = self._request(params or self.params(query, limit), query, backoff)
            except _Retry as retry:
                error = retry.error
                logger.warning(
                    "Commons search %r attempt %d/%d: %s", query, attempt, self.attempts, error
                )
                if isinstance(retry, _Told):  # the limiter has paused every worker
                    if retry.delay > self.max_wait:
                        raise error from None
                elif attempt < self.attempts:
                    left = budget.remaining()
                    if left is not None and left <= retry.delay:
                        raise error from None  # no time left in the POI's budget to try again
                    time.sleep(retry.delay)
                continue
            return candidates_from(query, payload, limit)
        raise error

    def _request(self, params: dict[str, Any], query: str, backoff: float) -> dict:
        deadline = Deadline(self.timeout[1])
        if deadline.expired:
            raise CommonsError("timeout", deadline.describe())
        with deadline:
            response = self._follow(params, deadline, backoff)
            with response:
                body = self._body(response, deadline, backoff)
        if deadline.passed:
            raise _Retry(CommonsError("timeout", deadline.describe()), backoff)
        return self._payload(query, response, body, backoff)

    def _body(self, response: Any, deadline: Deadline, backoff: float) -> bytes:
        """The decoded body of a JSON answer (b"" for any other), read CHUNK by CHUNK: over
        `max_answer_bytes` it is a fault, and no more of it is read or inflated."""
        if response.status_code != 200 or "json" not in response.headers.get("Content-Type", ""):
            return b""
        body = bytearray()
        try:
            for chunk in response.iter_content(CHUNK):
                body += chunk
                if len(body) > self.max_answer_bytes:
                    raise CommonsError(
                        "too_large",
                        f"the answer decodes to more than {self.max_answer_bytes:,} bytes "
                        "(WIKIMEDIA_API_MAX_BYTES); not read further",
                    )
        except requests.exceptions.ContentDecodingError as exc:
            raise _Retry(CommonsError("bad_response", f"undecodable body: {exc}"), backoff) from exc
        except (requests.RequestException, OSError) as exc:
            if deadline.passed or isinstance(exc, requests.Timeout):
                raise _Retry(CommonsError("timeout", deadline.describe()), backoff) from exc
            error = CommonsError("http_error", f"connection ended early: {exc}")
            raise _Retry(error, backoff) from exc
        return bytes(body)

    def _follow(self, params: dict[str, Any], deadline: Deadline, backoff: float) -> Any:
        """GET the API, following redirects only on its own origin (never sending the token
        elsewhere); an off-origin Location is refused without being fetched."""
        url: str = self.api_url
        query: dict[str, Any] | None = params
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                response = self.session.get(
                    url,
                    params=query,
                    headers=request_headers(),
                    timeout=socket_timeouts(deadline, self.timeout[0]),
                    allow_redirects=False,
                    stream=True,  # the body is read by `_body`, against the cap
                )
            except requests.RequestException as exc:
                if deadline.passed or isinstance(exc, requests.Timeout):
                    raise _Retry(CommonsError("timeout", deadline.describe()), backoff) from exc
                error = CommonsError("http_error", f"connection failed: {exc}")
                raise _Retry(error, backoff) from exc
            if response.status_code not in REDIRECT_STATUSES:
                return response
            response.close()
            location = response.headers.get("Location")
            if not location:
                raise CommonsError("http_error", f"HTTP {response.status_code} without Location")
            target = urljoin(response.url, location)
            if origin_of(target) != origin_of(self.api_url):
                raise CommonsError(
                    "redirect_refused",
                    f"the API redirected to {origin_of(target) or target!r}, off its own origin"
                    f" {origin_of(self.api_url)}; not followed",
                )
            url, query = target, None
        raise CommonsError("http_error", f"more than {MAX_REDIRECTS} redirects")

    def _payload(self, query: str, response: Any, body: bytes, backoff: float) -> dict:
        status = response.status_code
        if status == 429 or (status == 503 and "Retry-After" in response.headers):
            reason = "rate_limited" if status == 429 else "http_error"
            wait = _told_wait(response, backoff, reason, f"HTTP {status}", backoff)
            raise _Told(CommonsError(reason, f"HTTP {status}, retry after {wait:.0f} s"), wait)
        if status >= 500:
            raise _Retry(CommonsError("http_error", f"HTTP {status}"), backoff)
        if status != 200:
            raise CommonsError("http_error", f"HTTP {status}")
        content_type = response.headers.get("Content-Type", "")
        if "json" not in content_type:
            raise _Retry(CommonsError("bad_response", f"not JSON but {content_type!r}"), backoff)
        try:
            payload = json.loads(body)
        except ValueError:
            what = "an empty body" if not body else "malformed JSON"
            raise _Retry(CommonsError("bad_response", what), backoff) from None
        if not isinstance(payload, dict):
            raise _Retry(CommonsError("bad_response", "JSON is not an object"), backoff)
        api_error = payload.get("error")
        if isinstance(api_error, dict):
            code, info = api_error.get("code", "?"), api_error.get("info", "")
            if code == "maxlag":
                what = f"replicas lagging: {info}"
                wait = _told_wait(response, DEFAULT_MAXLAG_WAIT, "maxlag", what, backoff)
                raise _Told(CommonsError("maxlag", what), wait)
            raise CommonsError("api_error", f"{code}: {info}")
        if payload.get("warnings"):
            note_warnings(self.api_url, payload["warnings"])
        return payload


def _told_wait(response: Any, default: float, reason: str, what: str, backoff: float) -> float:
    """The wait a 429/503/maxlag answer (`reason`: `what`) asks of every worker; an unusable
    Retry-After makes it a fault of this request alone (`_Retry` after the usual backoff,
    nothing blocked)."""
    try:
        return retry_after_seconds(response, default)
    except BadRetryAfter as bad:
        error = CommonsError(reason, f"{what} with {bad}")
        logger.warning(
            "Commons API: %s; a fault of this request (retried after %.1f s), not a wait for "
            "every worker",
            error,
            backoff,
        )
        raise _Retry(error, backoff) from None


def get_commons_client(**options: Any) -> CommonsClient:
    """A client configured from settings (options override, e.g. in tests)."""
    options.setdefault("thumb_width", settings.IMAGE_RANKING_THUMB_WIDTH)
    return CommonsClient(settings.WIKIMEDIA_API_URL, **options)
