"""The one definition of "this candidate at N px": a standard rendition, or the original.

Used for the thumbnail that is scored, the winner that is stored and the dashboard's large
view, for search results (`CommonsCandidate`) and stored `Candidate` rows alike.
"""

from __future__ import annotations

from typing import Protocol

from image_ranking.commons.client import rendition_url


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
