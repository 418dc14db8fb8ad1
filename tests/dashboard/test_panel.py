"""The run panel says what it does: one city control per form with its own label, buttons named
after their scope, the real rate, an ETA that counts the tasks a cluster holds, a threshold
field whose default is a label, and a login page that tells a non-staff account it has no
access."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from image_ranking.models import RankingRun
from image_ranking.review import live, runpanel
from image_ranking.review.access import NO_ACCESS
from tests.dashboard.factories import make_run

URL = reverse("image_ranking:dashboard")
START = reverse("image_ranking:start_run")
HTMX = {"HTTP_HX_REQUEST": "true"}


def form_html(html: str, css_class: str) -> str:
    return re.search(rf'<form class="{css_class}".*?</form>', html, re.S).group(0)


def test_each_form_has_one_city_control_with_its_own_label(staff_client, pois):
    html = staff_client.get(URL).content.decode()
    run_form, filters = form_html(html, "run-form"), form_html(html, "filters")
    assert run_form.count('name="city"') == 1 and "Rank in city" in run_form
    assert filters.count('name="city"') == 1 and ">City" in filters
    assert "Rank in city" not in filters and ">City\n" not in run_form


def test_the_run_buttons_are_named_after_their_scope(staff_client, pois):
    run_form = form_html(staff_client.get(URL).content.decode(), "run-form")
    buttons = re.findall(r'<button[^>]*name="scope" value="(\w+)"[^>]*>([^<]+)</button>', run_form)
    assert buttons == [("missing", "Rank missing"), ("all", "Re-score all")]
    assert 'select name="scope"' not in run_form  # no second, contradicting scope control


def test_the_threshold_default_is_a_label_not_a_placeholder(staff_client, pois, settings):
    settings.IMAGE_RANKING_THRESHOLD = 4.5
    run_form = form_html(staff_client.get(URL).content.decode(), "run-form")
    threshold = re.search(r'<input type="number" name="threshold"[^>]*>', run_form).group(0)
    assert "placeholder" not in threshold and "value=" not in threshold
    assert "default 4.50" in run_form and "data-threshold-default" in run_form


def run_panel(html: str) -> str:
    return re.search(r'<div id="run-progress".*?\n</div>', html, re.S).group(0)


@pytest.mark.parametrize(
    ("rate", "idle", "running"),
    [(500, "at most 500 an hour", "at most 500 POIs an hour"), (0, "limiter off", "limiter off")],
)
def test_the_panel_shows_the_real_rate(staff_client, pois, settings, rate, idle, running):
    settings.WIKIMEDIA_RATE_PER_HOUR = rate
    html = staff_client.get(URL).content.decode()
    assert idle in html and ("at most 500" in html) == (rate == 500)  # the drawer says it
    _, _, poi_objs = pois
    make_run(poi_objs[:2], ["pending", "updated"])
    html = staff_client.get(URL).content.decode()
    assert running in run_panel(html) and ("at most 500" in html) == (rate == 500)


def test_re_score_all_starts_a_run_of_scope_all(staff_client, pois):
    response = staff_client.post(START, {"scope": "all", "return_to": ""}, **HTMX)
    assert response.status_code == 200
    run = RankingRun.objects.get()
    assert run.scope == "all" and run.tally().total == 6


def test_re_score_all_replaces_images_only_with_the_box_ticked(staff_client, pois):
    staff_client.post(START, {"scope": "all", "replace_existing": "on"}, **HTMX)
    assert RankingRun.objects.get().replace_existing is True


def test_a_start_without_scope_or_with_a_bad_one_changes_nothing(staff_client, pois):
    for data in ({}, {"scope": "everything"}, {"scope": "all", "city": "x"}):
        assert staff_client.post(START, data, **HTMX).status_code == 400
    assert not RankingRun.objects.exists() and not OrmQ.objects.exists()


def test_starting_a_run_needs_csrf_and_staff(csrf_client, plain_client, pois):
    assert csrf_client.post(START, {"scope": "all"}).status_code == 403
    assert plain_client.post(START, {"scope": "all"}).status_code == 302
    assert not RankingRun.objects.exists()


# --- A stalled run: told from the run's own items ----------------------------------------------


def hold(n: int, seconds: float, key: str | None = None) -> None:
    """`n` tasks a cluster took from the ORM broker, locked `seconds` ahead."""
    lock = timezone.now() + timedelta(seconds=seconds)
    for _ in range(n):
        OrmQ.objects.create(key=key or settings.Q_CLUSTER["name"], payload="x", lock=lock)


def held_of(run):
    tally = run.tally()
    return runpanel.held_tasks(run, tally, live.progress_of(run, tally))


def test_the_panel_counts_the_runs_running_items_not_the_brokers_rows(db, pois, settings):
    settings.WIKIMEDIA_RATE_PER_HOUR = 3600  # 1 s per POI
    _, _, poi_objs = pois
    run = make_run(poi_objs[:5], ["updated", "running", "pending", "pending", "pending"])
    hold(3, 360)  # broker rows of any run or cluster say nothing about this run
    hold(4, 600, key="another_cluster")
    held = held_of(run)
    assert held.count == 1
    assert held.stalled_seconds is None and held.text == ""  # a POI just finished: healthy


def test_nothing_running_says_nothing(db, pois):
    _, _, poi_objs = pois
    run = make_run(poi_objs[:2], ["updated", "pending"])
    hold(2, 120)
    assert held_of(run).count == 0 and held_of(run).text == ""


def test_the_poll_of_a_stalled_run_says_so_from_its_items_and_changes_nothing(
    staff_client, pois, settings
):
    settings.WIKIMEDIA_RATE_PER_HOUR = 500
    _, _, poi_objs = pois
    run = make_run(poi_objs[:4], ["running", "running", "pending", "pending"])
    # Nothing of the run finished since it started 5 min ago: its workers look dead.
    five_min_ago = timezone.now() - timedelta(minutes=5)
    RankingRun.objects.filter(pk=run.pk).update(started_at=five_min_ago)
    run.items.filter(outcome="running").update(started_at=five_min_ago)
    before = (OrmQ.objects.count(), list(run.items.values_list("outcome", flat=True)))
    response = staff_client.get(reverse("image_ranking:run_progress", args=[run.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "No POI of this run finished for 5 min; 2 are being ranked." in html
    assert "If a worker died, they end as failed within 1 min." in html
    assert "at most 500 POIs an hour" in html
    assert (OrmQ.objects.count(), list(run.items.values_list("outcome", flat=True))) == before


def test_the_poll_without_running_items_says_nothing_about_them(staff_client, pois):
    _, _, poi_objs = pois
    run = make_run(poi_objs[:2], ["pending"] * 2)
    html = staff_client.get(reverse("image_ranking:run_progress", args=[run.pk])).content
    assert b"data-held" not in html


# --- Login ------------------------------------------------------------------------------------

LOGIN = reverse("image_ranking:login")


def login(client, username: str, password: str):
    return client.post(f"{LOGIN}?next={URL}", {"username": username, "password": password})


def test_a_non_staff_account_with_the_right_password_is_told_it_has_no_access(
    client, django_user_model
):
    django_user_model.objects.create_user("visitor", password="right", is_staff=False)
    response = login(client, "visitor", "right")
    assert response.status_code == 200
    html = response.content.decode()
    assert "no access to the dashboard" in html and "correct username and password" not in html
    assert "_auth_user_id" not in client.session
    assert NO_ACCESS.split(":")[0] in html


def test_a_wrong_password_is_still_a_wrong_password(client, django_user_model):
    django_user_model.objects.create_user("visitor", password="right", is_staff=False)
    django_user_model.objects.create_user("curator", password="right", is_staff=True)
    for username in ("visitor", "curator", "nobody"):
        html = login(client, username, "wrong").content.decode()
        assert "correct username and password" in html and "no access" not in html


def test_a_staff_account_logs_in_and_reaches_the_dashboard(client, django_user_model, pois):
    django_user_model.objects.create_user("curator", password="right", is_staff=True)
    response = login(client, "curator", "right")
    assert response.status_code == 302 and response.url == URL
    assert client.get(URL).status_code == 200


def test_an_inactive_account_is_not_told_anything_more(client, django_user_model):
    django_user_model.objects.create_user("gone", password="right", is_active=False)
    html = login(client, "gone", "right").content.decode()
    assert "no access to the dashboard" not in html


def test_the_login_form_needs_its_csrf_token(django_user_model):
    from django.test import Client

    django_user_model.objects.create_user("visitor", password="right", is_staff=False)
    client = Client(enforce_csrf_checks=True)
    response = client.post(LOGIN, {"username": "visitor", "password": "right"})
    assert response.status_code == 403 and "_auth_user_id" not in client.session


def test_the_admin_keeps_its_own_login_and_imports_nothing_of_the_dashboard():
    """The dashboard's login is its own page (LOGIN_URL); image_ranking/admin.py no longer
    replaces the whole admin site's login form with the dashboard's, nor reaches into it."""
    import ast
    from pathlib import Path

    from django.conf import settings
    from django.contrib import admin

    import image_ranking.admin

    assert admin.site.login_form is None
    assert reverse(settings.LOGIN_URL) == reverse("image_ranking:login")
    tree = ast.parse(Path(image_ranking.admin.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert imported and not [m for m in imported if m and m.startswith("image_ranking.review")]
