"""What the focused review shows of an image: its facts (score, resolution, size, type, search
rank, distance, its Commons page) and why it won or lost, in the words of the tile's notes.
Computed only when a curator opens it: no tile of the grid carries it.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from django.template.defaultfilters import filesizeformat

from image_ranking.models import Candidate
from image_ranking.review.labels import rank_score
from image_ranking.review.tiles import Tile, commons_link


def details(tile: Tile) -> dict[str, Any]:
    """What the focused review shows of this image (its facts and why it won or lost)."""
    c = tile.candidate or tile.source
    # The current image's facts are the stored file's (resized to fit 800x600), not those
    # of the Commons original it came from; its resolution is read from it in the browser.
    original = tile.candidate
    size = original.size if original else tile.stored_size
    resolution = ""
    if original and original.width and original.height:
        resolution = f"{original.width}\u00d7{original.height}"
    mime = original.mime if original else ""
    info: dict[str, Any] = {
        "src": tile.large_url,
        "title": c.title if c else "",
        "kind": "candidate" if tile.candidate else ("fallback" if tile.fallback else "current"),
        "commons": (commons_link(c.description_url) or commons_link(c.image_url)) if c else "",
        "resolution": resolution,
        "size": filesizeformat(size) if size else "",
        "mime": mime or (mimetypes.guess_type(tile.image_url)[0] or ""),
        "rank": c.search_rank if c else None,
        "distance": f"{c.distance_km:.1f} km" if c and c.distance_km is not None else "",
        "score": _score_text(c),
        "reasons": _reasons(tile, c),
    }
    if not tile.candidate:
        info["title"] = info["title"] or (
            "Category fallback image" if tile.fallback else "Stored image"
        )
    return info


def _score_text(c: Candidate | None) -> str:
    if c is None or c.score is None:
        return ""
    text = f"{c.score:.2f}"
    if c.score_std is not None:
        text += f" ± {c.score_std:.2f}"
    if c.model_name:
        text += f" ({c.model_name})"
    ranked = rank_score(c)
    if ranked is not None and ranked < c.score:
        text += f", ranked {ranked:.2f}"
    return text


def _reasons(tile: Tile, c: Candidate | None) -> list[dict[str, str]]:
    """Why it won or lost, in the words of the tile's notes (kind: CSS modifier)."""
    reasons: list[dict[str, str]] = []
    if tile.fallback:
        reasons.append({"kind": "below", "text": "Category fallback: still needs a photo"})
    if c is None:
        return reasons
    if tile.candidate is None:
        reasons.append({"kind": "", "text": "Stored from this Commons candidate"})
    if c.is_winner and tile.candidate:
        text = "Chosen by a curator" if tile.chosen_by_curator else "Winner of the last ranking"
        reasons.append({"kind": "winner", "text": text})
    if c.error:
        reasons.append({"kind": "error", "text": c.error})
    if not c.eligible:
        text = f"Not eligible: {c.ineligible_reason or 'excluded'}"
        reasons.append({"kind": "ineligible", "text": text})
    score = rank_score(c)
    if tile.threshold is not None and score is not None and score < tile.threshold:
        text = f"Below threshold: {score:.2f} < {tile.threshold:.2f}"
        reasons.append({"kind": "below", "text": text})
    if c.damage:
        reasons.append({"kind": "damage", "text": c.damage[:1].upper() + c.damage[1:]})
    if c.relevance:
        text = c.relevance[:1].upper() + c.relevance[1:]
        reasons.append({"kind": "relevance", "text": text})
    return reasons
