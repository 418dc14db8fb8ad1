"""The grid's order, filters and counts on PostgreSQL: the modules that check them again, in a
child pytest whose database is PostgreSQL (the default order reads city by city there, a
LATERAL join; the name search is a regular expression of PostgreSQL's)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.postgres import server_url

HERE = Path(__file__).resolve().parent
MODULES = ["test_find_and_order.py", "test_facets.py", "test_states.py", "test_photos_first.py"]


@pytest.mark.slow
@pytest.mark.postgres
def test_the_grid_on_postgresql():
    url = server_url()
    env = {
        **os.environ,
        # pytest-django creates and drops test_<name> (through the maintenance database).
        "DATABASE_URL": f"{url.rpartition('/')[0]}/grid_{uuid.uuid4().hex[:12]}",
    }
    child = subprocess.run(
        [sys.executable, "-m", "pytest", *(str(HERE / m) for m in MODULES), "-q",
         "-p", "no:cacheprovider", "-p", "no:xdist", "-m", "not postgres and not browser"],
        cwd=HERE.parents[1], env=env, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    output = child.stdout[-4000:] + child.stderr[-2000:]
    assert child.returncode == 0, output
    assert " passed" in output and "skipped" not in output and "failed" not in output, output
