"""Development mode for every test process: loaded by `-p tests.environment` (pyproject addopts).

The settings default to production (DEBUG off, a key required). The suite runs in development
mode, like `make run`: DEBUG on and one random key for the whole run, set in os.environ so that
every `manage.py qcluster` and other subprocess a test starts with a copy of it gets the same.
Django-Q signs its task payloads with the key, so the test process that queues a task and the
cluster that runs it must agree. A key exported by hand is kept; nothing is written to var/.

Why a `-p` plugin: pytest imports it while reading its command line, before pytest-django
loads the settings (in pytest_load_initial_conftests, before any conftest.py is read), so
`make test` and a bare `python -m pytest` both get it without anyone exporting anything.
"""

from __future__ import annotations

import os
import secrets

# Forced, not defaulted: the suite is written for development mode, whatever the shell says.
os.environ["DJANGO_DEBUG"] = "1"
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
