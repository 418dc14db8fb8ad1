"""Rows as a download: CSV for a spreadsheet (formulas escaped), JSON Lines for programs
(exact). Both exports (the labels', the current view's) stream through these."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.http import StreamingHttpResponse


def csv_lines(rows: Iterable[dict[str, Any]], fields: list[str]) -> Iterator[str]:
    """The rows as CSV for a spreadsheet: every text cell that it would run as a formula is
    escaped (`_cell`). Only here: `jsonl_lines` keeps the data exact for programs."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


# What a spreadsheet may read as the start of a formula (OWASP "CSV injection"): a POI name,
# a city or a Commons file name is text from elsewhere, and "=HYPERLINK(...)" would run.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """Empty for None; text that a spreadsheet would run as a formula gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def jsonl_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """One JSON object per row, the data exactly as stored: a training pipeline reads the
    titles and URLs, and a spreadsheet's escape would change them."""
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


def download(
    rows: Iterable[dict[str, Any]], fields: list[str], fmt: str, name: str
) -> StreamingHttpResponse:
    """The rows streamed as `name.csv` or `name.jsonl` (`fmt`)."""
    body = csv_lines(rows, fields) if fmt == "csv" else jsonl_lines(rows)
    response = StreamingHttpResponse(body, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response
