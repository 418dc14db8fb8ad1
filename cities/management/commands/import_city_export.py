"""`python manage.py import_city_export FILE.json [FILE.json ...]`."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from cities.services.city_import import CityExportError, import_city_export_file


class Command(BaseCommand):
    help = "Import (or update in place) cities from city_wiki export files. Idempotent."

    def add_arguments(self, parser) -> None:
        parser.add_argument("files", nargs="+", help="city export JSON files")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args, files: list[str], no_progress: bool, **options) -> None:
        failed = []
        for path in files:
            bar = tqdm(total=0, desc=path, unit="POI", disable=no_progress, leave=False)

            def progress(done: int, total: int, bar=bar) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                summary = import_city_export_file(path, progress=progress)
            except CityExportError as exc:
                failed.append(path)
                self.stderr.write(self.style.ERROR(f"Not imported, nothing written: {exc}"))
                continue
            finally:
                bar.close()
            verdict = "imported" if summary.changed else "unchanged"
            self.stdout.write(self.style.SUCCESS(f"{verdict}: {summary.as_text()}"))
        if failed:
            raise CommandError(f"{len(failed)} of {len(files)} file(s) not imported")
