"""A Content-Security-Policy header on every response.

Why: the dashboard shows untrusted text (POI names, Commons titles) and images from Commons;
should an escaping bug ever let markup through, the browser must still refuse to run any
script that is not one of our own static files, to frame the page, or to post elsewhere.
Django 5.2 has no CSP support of its own, so this small middleware builds the header from
`settings.CONTENT_SECURITY_POLICY`, with `IMAGE_DOWNLOAD_ORIGINS` added to img-src.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"
# A source that can go into the header as is: scheme://host[:port], nothing that could end a
# directive (";", ","), quote a keyword or add another source (whitespace).
_ORIGIN = re.compile(
    r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$"
)


def image_origins() -> list[str]:
    """The configured download origins that are plain origins (anything else is left out)."""
    return [o.rstrip("/") for o in settings.IMAGE_DOWNLOAD_ORIGINS if _ORIGIN.match(o.rstrip("/"))]


def policy() -> str:
    directives = {k: list(v) for k, v in settings.CONTENT_SECURITY_POLICY.items()}
    images = directives.setdefault("img-src", ["'self'"])
    images += [o for o in image_origins() if o not in images]
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


class ContentSecurityPolicyMiddleware:
    """Sets the header unless a view has set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if HEADER not in response:
            response[HEADER] = policy()
        return response
