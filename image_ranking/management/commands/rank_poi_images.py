"""`python manage.py rank_poi_images`: rank the POIs in lists (queued, or here with --sync).

Ends with ONE JSON line in the original result-dict pattern (a stable interface for scripts):
`{"status": ..., "processed_count": N, "updated_count": M, "flagged_count": K,
"failed_count": F, ...}`. Everything else goes to stderr. The status (`run_result`) is
"success", "partial" (some POIs failed), "failed" (every POI failed: the exit status is 1),
"cancelled", or "queued"/"running" for a run left to the Django-Q cluster.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from cities.models import City
from image_ranking.models import Scope
from image_ranking.runs.service import RunAlreadyActive, run_result, start_run
from image_ranking.scoring import SCORE_MAX, ScoringModelMissing, get_scorer
from image_ranking.scoring.registry import MODEL_NAMES


class Command(BaseCommand):
    help = "Find, score and store Commons photos for POIs in lists (Django-Q jobs or --sync)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--city", help="Only this city (its name, case-insensitive).")
        parser.add_argument("--scope", choices=Scope.values, default=Scope.MISSING)
        parser.add_argument(
            "--threshold", type=float, help="Minimum score, 0 to 10 (default: the adopted one)."
        )
        parser.add_argument("--limit", type=int, help="At most this many POIs (1 or more).")
        parser.add_argument("--sync", action="store_true", help="Run here with a progress bar.")
        parser.add_argument(
            "--replace", action="store_true", help="With --scope all: replace existing images."
        )
        parser.add_argument(
            "--model", choices=MODEL_NAMES, help="Scoring model (default: IMAGE_RANKING_MODEL)."
        )

    def handle(self, *args, **options) -> None:
        city = options["city"]
        if city and not City.objects.filter(name__iexact=city).exists():
            raise CommandError(f"No city named {city!r}.")
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be 1 or more.")
        threshold = options["threshold"]
        if threshold is not None and not (0.0 <= threshold <= SCORE_MAX):
            raise CommandError(f"--threshold must be between 0 and {SCORE_MAX:g}.")
        bar = None
        progress = None
        if options["sync"]:
            try:  # fail once, clearly, rather than once per POI
                get_scorer(options["model"])
            except ScoringModelMissing as exc:
                raise CommandError(str(exc)) from exc

            bar = tqdm(total=0, unit="POI", desc="Ranking", file=self.stderr._out)

            def progress(done: int, total: int) -> None:
                bar.total = total
                if done < total:
                    bar.update(done - bar.n)
                else:  # the last POI: close() below draws the final bar, so it is drawn once
                    bar.n = done

        try:
            run = start_run(
                scope=options["scope"],
                city=city,
                threshold=options["threshold"],
                replace_existing=options["replace"],
                limit=options["limit"],
                sync=options["sync"],
                progress=progress,
                model_name=options["model"],
            )
        except RunAlreadyActive as exc:
            raise CommandError(f"{exc} Follow it on /image-ranking/ or cancel it there.") from exc
        finally:
            if bar is not None:
                bar.leave = bar.total > 0  # nothing ranked: clear the empty bar, keep no line
                bar.close()
        result = run_result(run)
        if run.is_active:  # left to the cluster (run_result has read the run's state again)
            result["message"] = (
                f"{result['total']} POIs queued for the Django-Q cluster (run {run.pk})"
            )
        self.stdout.write(json.dumps(result, ensure_ascii=False))
        if result["status"] == "failed":
            raise CommandError(
                f"Every POI of run {run.pk} failed ({result['failed_count']}); each POI's "
                "reason is on its card at /image-ranking/."
            )
