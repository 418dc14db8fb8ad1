"""The Content-Security-Policy header: django-csp's middleware, with the image download origins.

Why: the dashboard shows untrusted text (POI names, Commons titles) and images from Commons;
should an escaping bug ever let markup through, the browser must still refuse to run any
script that is not one of our own static files, to frame the page, or to post elsewhere.
django-csp builds the header from `settings.CONTENT_SECURITY_POLICY`; this subclass adds each
of `IMAGE_DOWNLOAD_ORIGINS` to img-src, read when the response is made (so a test or a
deployment that changes them is followed), leaving out any that is not a plain origin.
"""

from __future__ import annotations

import dataclasses
import re

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase

# A source that can go into the header as is: scheme://host[:port], nothing that could end a
# directive (";", ","), quote a keyword or add another source (whitespace).
_ORIGIN = re.compile(
    r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$"
)


def image_origins() -> list[str]:
    """The configured download origins that are plain origins (anything else is left out)."""
    return [o.rstrip("/") for o in settings.IMAGE_DOWNLOAD_ORIGINS if _ORIGIN.match(o.rstrip("/"))]


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if report_only:
            return parts
        update = dict(parts.update or {})
        update["img-src"] = [*update.get("img-src", ()), *image_origins()]
        return dataclasses.replace(parts, update=update)
