"""A curator's better query for one POI: a different wording, a local-language name, or the
File: titles they know are right. Kept on the POI's ranking row and used by every later run
(`pipeline.ranking`), still in one API request; the card shows what was sent."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from django import forms

from cities.models import PointOfInterest
from image_ranking.models import PoiRanking

MAX_TITLES = 10
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f|#<>\[\]{}]")


def file_title(text: str) -> str:
    """`File:X.jpg` from "X.jpg", "File:X.jpg" or a Commons file page URL; ValueError else."""
    text = text.strip()
    if text.startswith(("https://", "http://")):
        path = unquote(urlsplit(text).path)
        if "/wiki/" not in path:
            raise ValueError(f"not a Commons file page: {text}")
        text = path.split("/wiki/", 1)[1]
    text = text.replace("_", " ").strip()
    if text.lower().startswith("file:"):
        text = text[5:].strip()
    if not text or len(text) > 240 or _FORBIDDEN.search(text) or "." not in text:
        raise ValueError(f"not a file title: {text!r}")
    return f"File:{text}"


class SearchQueryForm(forms.Form):
    query = forms.CharField(required=False, max_length=300, strip=True)
    titles = forms.CharField(required=False, max_length=4000, widget=forms.Textarea)

    def clean_query(self) -> str:
        query = self.cleaned_data["query"]
        if _FORBIDDEN.search(query.replace("#", "")):
            raise forms.ValidationError("The query has characters Commons search does not take.")
        return query

    def clean_titles(self) -> list[str]:
        lines = [line for line in re.split(r"[\n\r]+", self.cleaned_data["titles"]) if line.strip()]
        if len(lines) > MAX_TITLES:
            raise forms.ValidationError(f"At most {MAX_TITLES} files.")
        try:
            titles = [file_title(line) for line in lines]
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return list(dict.fromkeys(titles))  # once each, in the curator's order


def save_search(poi: PointOfInterest, query: str, titles: list[str]) -> PoiRanking:
    """Keep the curator's query and titles for the POI (empty ones: back to its name)."""
    ranking, _ = PoiRanking.objects.get_or_create(poi=poi)
    PoiRanking.objects.filter(pk=ranking.pk).update(search_query=query, file_titles=titles)
    ranking.refresh_from_db()
    return ranking
