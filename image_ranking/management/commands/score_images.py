"""`python manage.py score_images [--model nima] [--json] PATH...`: score local image files.

Each file is decoded like a downloaded thumbnail (same checks, same RGB conversion); one that
cannot be scored gets a per-file error and the others are still scored (exit status 1).
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from image_ranking.scoring import ScoringModelMissing, get_scorer
from image_ranking.scoring.imaging import DEFAULT_MAX_PIXELS, ImageRejected, open_image
from image_ranking.scoring.registry import MODEL_NAMES

BATCH = 16
MAX_FILE_BYTES = 100_000_000


def _load(path: Path, max_pixels: int):
    """The decoded image, or the reason it cannot be scored."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, f"file larger than {MAX_FILE_BYTES} bytes"
        return open_image(path.read_bytes(), max_pixels=max_pixels), None
    except ImageRejected as exc:
        return None, str(exc)
    except OSError as exc:
        return None, exc.strerror or str(exc)


def _score_pending(scorer, pending: list) -> None:
    """Score the pending images as one batch; if one image cannot be converted, score the
    others one by one so only that file gets an error."""
    if not pending:
        return
    try:
        results = scorer.score([image for _, image in pending])
    except ImageRejected:
        results = []
        for entry, image in pending:
            try:
                results.extend(scorer.score([image]))
            except ImageRejected as exc:
                entry["error"] = str(exc)
                results.append(None)
    for (entry, _), result in zip(pending, results, strict=True):
        if result is not None:
            entry["score"], entry["std"] = result.score, result.std
    pending.clear()


class Command(BaseCommand):
    help = "Score image files with the aesthetic model (0-10, higher is better)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--model", choices=MODEL_NAMES, default=None)
        parser.add_argument("--json", action="store_true", help="Print one JSON document.")
        parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)

    def handle(self, *args, **options) -> None:
        try:
            scorer = get_scorer(options["model"])
        except ScoringModelMissing as exc:
            raise CommandError(str(exc)) from exc
        results: list[dict] = []
        pending: list[tuple[dict, object]] = []
        for path in options["paths"]:
            entry: dict = {"path": str(path)}
            results.append(entry)
            image, error = _load(path, options["max_pixels"])
            if error:
                entry["error"] = error
                continue
            pending.append((entry, image))
            if len(pending) >= BATCH:
                _score_pending(scorer, pending)
        _score_pending(scorer, pending)

        failed = any("error" in entry for entry in results)
        if options["json"]:
            self.stdout.write(json.dumps({"model": scorer.name, "results": results}))
        else:
            for entry in results:
                if "error" in entry:
                    self.stdout.write(f"{entry['path']}: ERROR {entry['error']}")
                else:
                    std = "" if entry["std"] is None else f" (std {entry['std']:.2f})"
                    self.stdout.write(f"{entry['path']}: {entry['score']:.3f}{std}")
        if failed:
            raise SystemExit(1)
