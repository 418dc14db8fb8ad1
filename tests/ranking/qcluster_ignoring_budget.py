"""`manage.py qcluster` whose per-POI work ignores its time budget, as work blocked where no
budget reaches would, so a task really runs past Q_TIMEOUT and Django-Q's own timeout (a
SIGALRM raising TimeoutException in the worker) ends it. Used by tests/ranking/test_qcluster.py;
the workers are forked, so they inherit the patch."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "city_wiki.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402

from image_ranking.pipeline import ranking  # noqa: E402

ranking.poi_budget_seconds = lambda: 3600.0
call_command("qcluster")
