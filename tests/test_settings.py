"""Production mode passes Django's deployment checks with no warnings."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO_ROOT


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_without_warnings_in_production_mode(tmp_path):
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="k3Y-" + "a1b2c3d4e5f6g7h8" * 4,
        DJANGO_ALLOWED_HOSTS="guide.example.org",
        SQLITE_PATH=str(tmp_path / "db.sqlite3"),
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_production_mode_refuses_to_start_without_a_secret_key(tmp_path):
    env = {"DJANGO_DEBUG": "0", "SQLITE_PATH": str(tmp_path / "db.sqlite3")}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env={k: v for k, v in {**os.environ, **env}.items() if k != "DJANGO_SECRET_KEY"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_sqlite_runs_in_wal_mode_with_immediate_transactions(db):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        mode = cursor.fetchone()[0]
    # The test database may be in memory, where WAL is not available; the settings say WAL.
    options = connection.settings_dict["OPTIONS"]
    assert "journal_mode=WAL" in options["init_command"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert mode in {"wal", "memory"}


# --- secrets on the debug page ----------------------------------------------------------------
DEBUG_PAGE_PROBE = """
import sys
import django
django.setup()
from django.conf import settings
from django.views.debug import ExceptionReporter, get_default_exception_reporter_filter
try:
    raise RuntimeError("boom")
except RuntimeError:
    html = ExceptionReporter(None, *sys.exc_info()).get_traceback_html()
safe = get_default_exception_reporter_filter().get_safe_settings()
print("DATABASE_URL" in dir(settings), "DATABASE_URL" in safe, "s3cr3t-pw" in repr(safe),
      "s3cr3t-pw" in html, settings.DATABASES["default"]["HOST"])
"""


def test_database_url_and_its_password_never_reach_the_debug_page():
    result = subprocess.run(
        [sys.executable, "-c", DEBUG_PAGE_PROBE],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "city_wiki.settings",
            "DJANGO_DEBUG": "1",
            "DATABASE_URL": "postgres://curator:s3cr3t-pw@db.internal:5432/guide",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    in_dir, in_safe, password_in_settings, password_in_page, host = result.stdout.split()
    assert host == "db.internal"  # the URL is still used
    assert (in_dir, in_safe) == ("False", "False")
    assert (password_in_settings, password_in_page) == ("False", "False")


# --- Content-Security-Policy ------------------------------------------------------------------
def csp(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split("; ")}


def inline_scripts(html: str) -> list[str]:
    """<script> tags without src, and on*= handler attributes: what the policy would block."""
    import re

    tags = re.findall(r"<script\b[^>]*>", html)
    handlers = re.findall(r"<[^>]+\son[a-z]+\s*=", html)
    evaluated = re.findall(r"\shx-on\S*=|hx-vals=[\"']js:", html)  # htmx would need eval
    return [t for t in tags if " src=" not in t] + handlers + evaluated


def test_every_page_carries_the_content_security_policy(admin_client, client, settings, db):
    settings.IMAGE_DOWNLOAD_ORIGINS = ["https://upload.wikimedia.org", "http://127.0.0.1:8765"]
    dashboard = admin_client.get("/image-ranking/")
    login = client.get("/admin/login/")
    assert dashboard.status_code == 200 and login.status_code == 200
    for response in (dashboard, login, client.get("/image-ranking/")):  # a redirect too
        policy = csp(response)
        assert policy["default-src"] == ["'self'"]
        assert policy["img-src"] == [
            "'self'",
            "data:",
            "https://upload.wikimedia.org",
            "http://127.0.0.1:8765",
        ]
        assert policy["script-src"] == ["'self'"]
        assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["object-src"] == ["'none'"]
        assert policy["base-uri"] == ["'self'"]
        assert policy["form-action"] == ["'self'"]


def test_pages_run_no_script_the_policy_would_block(admin_client, db):
    """The dashboard and the admin use only their own static script files."""
    for url in ("/image-ranking/", "/admin/", "/admin/cities/pointofinterest/", "/admin/login/"):
        response = admin_client.get(url, follow=True)
        assert response.status_code == 200, url
        assert inline_scripts(response.content.decode()) == [], url


def test_an_origin_that_would_break_the_header_is_left_out(client, settings, db):
    settings.IMAGE_DOWNLOAD_ORIGINS = [
        "https://upload.wikimedia.org",
        "https://evil.example; script-src *",
        "https://a.example 'unsafe-eval'",
    ]
    policy = csp(client.get("/admin/login/"))
    assert policy["img-src"] == ["'self'", "data:", "https://upload.wikimedia.org"]
    assert policy["script-src"] == ["'self'"]
