"""Fixtures of the dashboard tests: a staff user, a plain user, a few POIs with candidates."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.dashboard.factories import make_pois


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("curator", password="pw", is_staff=True)


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def csrf_client(staff) -> Client:
    """A staff client that enforces CSRF like a browser does."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    return client


@pytest.fixture
def plain_client(django_user_model) -> Client:
    user = django_user_model.objects.create_user("visitor", password="pw", is_staff=False)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def pois(db):
    """Six POIs in a list: 0 and 3 have images, 5 is flagged, each with 3 candidates."""
    return make_pois(6, 3, image_every=3, flag_every=5)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The header counts are cached per data stamp (selectors.counts): each test starts
    without another test's."""
    from django.core.cache import cache

    cache.clear()
