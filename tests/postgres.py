"""A fresh PostgreSQL database per test, on the server `make test` starts
(scripts/with_postgres.sh sets TEST_POSTGRES_URL); tests skip without it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def server_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TEST_POSTGRES_URL not set (make test starts a PostgreSQL server)")
    return url


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards (connections closed by force)."""
    import psycopg

    url = server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{url.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
