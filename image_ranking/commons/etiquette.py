"""What every request to Wikimedia carries and honours: an identifying User-Agent (and the API
token, on the API only), and the server's `Retry-After`, trusted only when it is a finite number
of seconds or an HTTP date, and at most an hour."""

from __future__ import annotations

import email.utils
import math
import re
import time

import requests
from django.conf import settings

from image_ranking.commons.ratelimit import Limiter

MAX_RETRY_AFTER = 3600.0  # a longer Retry-After is clamped to an hour
# RFC 9110 delay-seconds (digits; a decimal fraction is tolerated). No sign, no exponent.
_DELAY_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def user_agent() -> str:
    """Wikimedia's User-Agent policy: app/version (contact) library/version."""
    agent = settings.WIKIMEDIA_USER_AGENT
    if "requests/" not in agent:
        agent = f"{agent} python-requests/{requests.__version__}"
    return agent


def request_headers() -> dict[str, str]:
    headers = {"User-Agent": user_agent(), "Accept-Encoding": "gzip"}
    if settings.WIKIMEDIA_API_TOKEN:
        headers["Authorization"] = f"Bearer {settings.WIKIMEDIA_API_TOKEN}"
    return headers


def slot_wait_message(limiter: Limiter, waited: float, exc: Exception) -> str:
    """What a request that never got a limiter slot says: how long it queued, and why not."""
    bucket = getattr(exc, "bucket", None) or getattr(limiter, "name", None)
    bucket = bucket or limiter.config.name  # type: ignore[union-attr]
    return f"waited {waited:.1f} s for a {bucket} slot, then gave up ({exc})"


class BadRetryAfter(ValueError):
    """A Retry-After that is neither a finite number of seconds nor an HTTP date."""


def retry_after_seconds(response: requests.Response, default: float) -> float:
    """Retry-After in seconds, at most MAX_RETRY_AFTER; `default` when there is none.

    It may be a number of seconds or an HTTP date (a date already past means now). Raises
    BadRetryAfter for anything else: inf, nan, -5, garbage, a number too large for a float.
    Such a value is a fault of the request that carried it: trusted, it would pause every
    worker for ever ("would wait inf s") until someone edited the bucket by hand.
    """
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return default
    if _DELAY_SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            seconds = math.nan
    if not math.isfinite(seconds):
        raise BadRetryAfter(f"an unusable Retry-After {value[:40]!r}")
    return min(max(0.0, seconds), MAX_RETRY_AFTER)
