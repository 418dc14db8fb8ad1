"""Django for a benchmark: a throwaway SQLite file and media folder, the shared limiter off.

Every end-to-end bench needs the same set-up before Django loads; this is it, once.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup(prefix: str) -> Path:
    """Configure and start Django in a new temporary folder (returned); call before importing
    any model."""
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "city_wiki.settings",
            "DJANGO_DEBUG": os.environ.get("DJANGO_DEBUG", "1"),  # a development tool
            "SQLITE_PATH": str(work / "bench.sqlite3"),
            "MEDIA_ROOT": str(work / "media"),
            "WIKIMEDIA_RATE_PER_HOUR": "0",
            "LOG_LEVEL": "ERROR",
        }
    )
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    return work
