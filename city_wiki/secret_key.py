"""The development secret key: random, made once per checkout, kept in `var/secret-key`.

Every development process of a checkout (`make run`'s web server and Django-Q cluster, a
`manage.py` command in another terminal, a benchmark) reads the same file. Django-Q signs its
task payloads with SECRET_KEY, so the process that queues a task and the cluster that runs it
must agree; sessions stay valid across restarts; and no key is in the repository.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def development_secret_key(path: Path) -> str:
    """The key in `path`, made first if there is none (mode 600). Processes starting at once
    all get the one key: each writes a private temporary file and links it into place, a link
    that only the first succeeds in making, so nobody ever reads a half-written key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret-key-")  # mode 600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(50) + "\n")
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: delete it and a new key is made")
    return key
