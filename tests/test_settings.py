"""Secure by default: production mode unless DJANGO_DEBUG=1, no key in the repository,
X-Forwarded-Proto trusted only when configured; production passes Django's deployment checks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from tests.conftest import REPO_ROOT

DEVELOPMENT_KEY = REPO_ROOT / "var" / "secret-key"


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


def run_python(code: str, drop: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess:
    """`code` in a new process of the project, with the test run's environment minus `drop`
    plus `env` (the settings are read once per process)."""
    environment = {k: v for k, v in os.environ.items() if k not in drop}
    environment.update(DJANGO_SETTINGS_MODULE="city_wiki.settings", **env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRINT_SETTINGS = """
import django
django.setup()
from django.conf import settings
print(settings.DEBUG, settings.SECRET_KEY)
"""


def test_debug_is_off_unless_django_debug_turns_it_on(tmp_path):
    key = "k3Y-" + "a1b2c3d4e5f6g7h8" * 4
    database = str(tmp_path / "db.sqlite3")
    unset = run_python(
        PRINT_SETTINGS, ("DJANGO_DEBUG",), DJANGO_SECRET_KEY=key, SQLITE_PATH=database
    )
    off = run_python(PRINT_SETTINGS, DJANGO_DEBUG="0", DJANGO_SECRET_KEY=key, SQLITE_PATH=database)
    on = run_python(PRINT_SETTINGS, DJANGO_DEBUG="1", DJANGO_SECRET_KEY=key, SQLITE_PATH=database)
    assert unset.stdout.split() == ["False", key], unset.stderr
    assert off.stdout.split() == ["False", key], off.stderr
    assert on.stdout.split() == ["True", key], on.stderr


def test_without_any_setting_the_app_refuses_to_start_and_says_what_to_set(tmp_path):
    result = run_python(
        PRINT_SETTINGS,
        ("DJANGO_DEBUG", "DJANGO_SECRET_KEY"),
        SQLITE_PATH=str(tmp_path / "db.sqlite3"),
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr
    assert "DJANGO_DEBUG=1" in result.stderr  # the way to development mode


def test_development_mode_keeps_one_random_key_in_var_not_in_the_repository(tmp_path):
    """What `make run`'s web server and Django-Q cluster do: two processes, one key (Django-Q
    signs its tasks with it), the same after a restart (sessions survive), readable by the
    owner only, and written nowhere in the repository's files."""
    database = str(tmp_path / "db.sqlite3")
    first, second = (
        run_python(PRINT_SETTINGS, ("DJANGO_SECRET_KEY",), DJANGO_DEBUG="1", SQLITE_PATH=database)
        for _ in range(2)
    )
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    key = DEVELOPMENT_KEY.read_text().strip()
    assert first.stdout.split() == second.stdout.split() == ["True", key]
    assert len(key) >= 50
    assert stat.S_IMODE(DEVELOPMENT_KEY.stat().st_mode) == 0o600
    tracked = subprocess.run(
        ["git", "grep", "-l", "--fixed-strings", key], cwd=REPO_ROOT, capture_output=True
    )
    assert tracked.stdout == b""


KEY_RACE = """
import sys
from pathlib import Path
from city_wiki.secret_key import development_secret_key
print(development_secret_key(Path(sys.argv[1])))
"""


def test_processes_starting_at_once_all_get_the_one_key(tmp_path):
    path = tmp_path / "var" / "secret-key"
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", KEY_RACE, str(path)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    keys = {starter.communicate(timeout=60)[0].strip() for starter in starters}
    assert keys == {path.read_text().strip()}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret-key"]  # no temporary left


# --- X-Forwarded-Proto ------------------------------------------------------------------------
BEHIND_A_PROXY = """
import django
django.setup()
from django.test import Client
response = Client().get("/image-ranking/", headers={"X-Forwarded-Proto": "https"})
hsts = response.has_header("Strict-Transport-Security")
print(response.status_code, response.get("Location"), hsts)
"""


def production(tmp_path, **env: str) -> dict[str, str]:
    return {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "k3Y-" + "a1b2c3d4e5f6g7h8" * 4,
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        **env,
    }


def test_x_forwarded_proto_is_a_clients_word_unless_configured(tmp_path):
    """Without DJANGO_TRUST_X_FORWARDED_PROTO, a plain-HTTP request claiming https is still
    plain HTTP: redirected to https, no HSTS header."""
    result = run_python(BEHIND_A_PROXY, ("DJANGO_TRUST_X_FORWARDED_PROTO",), **production(tmp_path))
    assert result.stdout.split() == ["301", "https://testserver/image-ranking/", "False"], (
        result.stderr
    )


def test_x_forwarded_proto_is_trusted_behind_a_proxy_that_sets_it(tmp_path):
    result = run_python(BEHIND_A_PROXY, **production(tmp_path, DJANGO_TRUST_X_FORWARDED_PROTO="1"))
    status, location, hsts = result.stdout.split()
    assert (status, hsts) == ("302", "True"), result.stderr  # served: on to the login page
    assert location.startswith("/image-ranking/login/")


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
    pages = ("/image-ranking/", "/image-ranking/login/", "/admin/", "/admin/login/")
    for url in (*pages, "/admin/cities/pointofinterest/"):
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


def test_the_suite_and_the_processes_it_starts_share_development_mode_and_one_key(settings):
    """tests/environment.py: no one exports anything, yet a `manage.py` subprocess of a test
    has DEBUG on and the test process's key (so it can read what the test's Django-Q signs)."""
    result = run_python(PRINT_SETTINGS)
    assert result.stdout.split() == ["True", settings.SECRET_KEY], result.stderr
    assert os.environ["DJANGO_SECRET_KEY"] == settings.SECRET_KEY
