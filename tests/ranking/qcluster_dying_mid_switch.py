"""`manage.py qcluster` whose worker SIGKILLs itself once inside the transaction that switches a
POI's image: right after the image row is switched, before origin, winner and status are
written and before the commit (`DIE_MARKER` names the file that says it already died, and
holds its pid). Used by tests/ranking/test_races.py; the workers are forked, so they inherit
the patch."""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "city_wiki.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402

from image_ranking.pipeline import outcome  # noqa: E402

MARKER = Path(os.environ["DIE_MARKER"])
switch_image = outcome._switch_image


def switch_then_die(*args, **kwargs):
    switch_image(*args, **kwargs)
    if not MARKER.exists():
        MARKER.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


outcome._switch_image = switch_then_die
call_command("qcluster")
