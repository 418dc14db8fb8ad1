"""`python manage.py score_images [--model nima] [--json] PATH...`: score local image files.

Each file is decoded like a downloaded thumbnail (same checks, same RGB conversion); one that
cannot be scored gets a per-file error and the others are still scored (exit status 1).
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from image_ranking.imaging import DEFAULT_MAX_PIXELS, ImageRejected, open_image
from image_ranking.scoring import ScoringModelMissing, get_scorer
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

        def flush() -> None:
            for (entry, _), result in zip(
                pending, scorer.score([image for _, image in pending]), strict=True
            ):
                entry["score"] = result.score
                entry["std"] = result.std
            pending.clear()

        for path in options["paths"]:
            entry: dict = {"path": str(path)}
            results.append(entry)
            image, error = _load(path, options["max_pixels"])
            if error:
                entry["error"] = error
                continue
            try:
                pending.append((entry, image))
                if len(pending) >= BATCH:
                    flush()
            except ImageRejected as exc:  # an unconvertible colour mode in this batch
                self._score_one_by_one(scorer, pending, exc)
        if pending:
            try:
                flush()
            except ImageRejected as exc:
                self._score_one_by_one(scorer, pending, exc)

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

    @staticmethod
    def _score_one_by_one(scorer, pending: list, _exc: Exception) -> None:
        """A batch failed on one image: score the rest individually, the culprit gets an error."""
        for entry, image in pending:
            try:
                (result,) = scorer.score([image])
            except ImageRejected as exc:
                entry["error"] = str(exc)
            else:
                entry["score"], entry["std"] = result.score, result.std
        pending.clear()
