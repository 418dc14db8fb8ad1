"""The one definition of "this candidate at N px": a standard rendition, or the original.

Used for the thumbnail that is scored, the winner that is stored and the dashboard's large
view, for search results (`CommonsCandidate`) and stored `Candidate` rows alike.
"""

from __future__ import annotations

import re
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

# Commons serves thumbnails only at these widths; anything else is refused.
STANDARD_WIDTHS = (20, 40, 60, 120, 250, 330, 500, 960, 1280, 1920, 3840)


class HasRenditions(Protocol):
    image_url: str
    thumb_url: str
    width: int | None


def rendition_or_original(
    candidate: HasRenditions, width: int, *, original_if_unrenderable: bool = False
) -> str:
    """The URL of `candidate` at `width` px (a standard step): the original when `width` is 0
    or the original is not wider (Commons never upscales), else that rendition.

    When a rendition is needed but Commons gave no thumbnail URL (it sends `thumberror` when it
    cannot render one), raises ValueError so the caller fails that candidate alone rather than
    fetch a possibly huge original; `original_if_unrenderable` takes the original instead
    (the one winner a curator or the pipeline chose, downloaded under the size cap).
    """
    if width <= 0 or (candidate.width and candidate.width <= width):
        return candidate.image_url
    if not candidate.thumb_url or candidate.thumb_url == candidate.image_url:
        if original_if_unrenderable:
            return candidate.image_url
        raise ValueError("Commons sent no thumbnail URL for this file")
    return rendition_url(candidate.thumb_url, width)


def standard_width(width: int) -> int:
    """The standard thumbnail step Commons would serve for `width` (rounded up)."""
    return next((step for step in STANDARD_WIDTHS if step >= width), STANDARD_WIDTHS[-1])


def rendition_url(thumb_url: str, width: int) -> str:
    """The same thumbnail at another standard width step.

    Raises ValueError for a non-standard width or a URL that is not a thumbnail (Commons
    answers the original's URL when the original is narrower than the width asked for).
    Callers wanting "width 0 or >= original -> the original" use
    `renditions.rendition_or_original()`.
    """
    if width not in STANDARD_WIDTHS:
        raise ValueError(f"{width}px is not a standard thumbnail width {STANDARD_WIDTHS}")
    parts = urlsplit(thumb_url)
    head, _, last = parts.path.rpartition("/")
    if "/thumb/" not in parts.path:
        raise ValueError(f"not a thumbnail URL: {thumb_url}")
    new_last, count = re.subn(r"(^|-)\d+px-", rf"\g<1>{width}px-", last, count=1)
    if not count:
        raise ValueError(f"no width in thumbnail URL: {thumb_url}")
    return urlunsplit(parts._replace(path=f"{head}/{new_last}"))
