"""`python manage.py ensure_staff_user`: the curator login that `make run` prints.

Username and password come from DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD; without
a password one is generated once and kept in var/staff-password (mode 600), so the printed
credentials stay valid across restarts.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


def _stored_password(path: Path) -> str:
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    return password


class Command(BaseCommand):
    help = "Create or update the staff user that curators log in with, and print its login."

    def handle(self, *args, **options) -> None:
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "curator")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD") or _stored_password(
            Path(settings.BASE_DIR) / "var" / "staff-password"
        )
        user, created = get_user_model().objects.get_or_create(username=username)
        user.is_staff = True
        user.is_superuser = True
        if created or not user.check_password(password):
            user.set_password(password)
        user.save()
        self.stdout.write(f"Staff login: username {username!r}, password {password!r}")
