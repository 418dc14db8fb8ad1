"""One undo takes back a whole "Only this" (Shift+G): the session's undo stack holds one
entry per action, a bulk action's labels as one group of one POI.

The group undo puts every label back as it was (a bootstrap label, another curator's label,
no label at all), in one transaction, and answers with the POI's card; a single label's undo
still answers with its tile; entries stored before groups existed still pop; the depth counts
actions; and the undo endpoint stays staff only, POST only and CSRF checked.
"""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from image_ranking.models import Candidate, ImageTrainingData
from image_ranking.review import bulk, labels, undo
from tests.dashboard.factories import make_pois

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
DASH = reverse("image_ranking:dashboard")
UNDO = reverse("image_ranking:undo")
ROW_FIELDS = (
    "label",
    "source",
    "aesthetic_score",
    "thumbnail_url",
    "labelled_by_id",
    "model_name",
)


def only_url(candidate: Candidate) -> str:
    return reverse("image_ranking:good_others_bad", args=[candidate.pk])


def label_url(candidate: Candidate) -> str:
    return reverse("image_ranking:label_candidate", args=[candidate.pk])


def snapshot() -> dict[str, tuple]:
    """Every label row as (label, source, score, thumbnail, who, model), by image URL."""
    return {
        row["image_url"]: tuple(row[f] for f in ROW_FIELDS)
        for row in ImageTrainingData.objects.values("image_url", *ROW_FIELDS)
    }


@pytest.fixture
def poi_with_history(django_user_model):
    """One POI with four candidates and a label history: the first has a bootstrap (auto)
    label, the second another curator's good label, the third and fourth none. A second POI
    keeps a label of its own."""
    _, _, pois = make_pois(2, 4, image_every=0, flag_every=0)
    first, second, third, fourth = Candidate.objects.filter(poi=pois[0]).order_by("search_rank")
    colleague = django_user_model.objects.create_user("colleague", password="pw", is_staff=True)
    ImageTrainingData.objects.create(
        poi=pois[0],
        image_url=first.image_url,
        thumbnail_url="https://upload.wikimedia.org/old-thumb.jpg",
        label="good",
        source=ImageTrainingData.Source.BOOTSTRAP,
        aesthetic_score=6.1,
        model_name="laion",
    )
    ImageTrainingData.objects.create(
        poi=pois[0],
        image_url=second.image_url,
        thumbnail_url=second.thumb_url,
        label="good",
        source=ImageTrainingData.Source.CURATOR,
        aesthetic_score=5.5,
        model_name="nima",
        labelled_by=colleague,
    )
    elsewhere = Candidate.objects.filter(poi=pois[1]).first()
    ImageTrainingData.objects.create(
        poi=pois[1], image_url=elsewhere.image_url, label="bad", source="curator"
    )
    return pois, (first, second, third, fourth)


def test_one_undo_takes_back_a_whole_only_this_with_htmx(staff_client, poi_with_history):
    pois, (first, second, third, fourth) = poi_with_history
    before = snapshot()

    response = staff_client.post(only_url(third), **HTMX)
    assert response.status_code == 200
    assert {url: row[0] for url, row in snapshot().items()} == {
        **{url: row[0] for url, row in before.items()},  # the other POI's label kept
        first.image_url: "bad",
        second.image_url: "bad",
        third.image_url: "good",
        fourth.image_url: "bad",
    }
    assert undo.undo_depth(staff_client.session) == 1  # one action, four labels

    response = staff_client.post(UNDO, {"return_to": "status=missing"}, **HTMX)

    assert response.status_code == 200
    assert snapshot() == before  # every label as it was, the unlabelled ones unlabelled again
    assert response["HX-Retarget"] == f"#poi-{pois[0].pk}"
    assert response["HX-Reswap"] == "outerHTML"
    assert response[bulk.FOCUS_HEADER] == f"#t-c{third.pk}"  # the one it had marked good
    body = response.content.decode()
    assert f'id="poi-{pois[0].pk}"' in body  # the whole card ...
    assert all(f'id="t-c{c.pk}"' in body for c in (first, second, third, fourth))
    assert 'id="calibration"' in body and 'id="undo-button"' in body  # ... and the panels
    assert "Undone: 1 good and 3 bad labels taken back." in body
    assert undo.undo_depth(staff_client.session) == 0
    assert staff_client.post(UNDO, **HTMX).status_code == 409  # nothing more to undo


def test_one_undo_after_only_this_without_javascript_redirects_back_with_the_message(
    staff_client, poi_with_history
):
    pois, (_, second, _, _) = poi_with_history
    before = snapshot()
    staff_client.post(only_url(second))

    response = staff_client.post(UNDO, {"return_to": "status=missing"})

    assert response.status_code == 302
    assert response["Location"] == f"{DASH}?status=missing#poi-{pois[0].pk}"
    assert snapshot() == before
    texts = [m.message for m in get_messages(response.wsgi_request)]
    assert "Undone: 1 good and 3 bad labels taken back." in texts


def test_undo_after_only_this_goes_on_to_the_action_before_it(staff_client, poi_with_history):
    _, (first, _, third, _) = poi_with_history
    staff_client.post(label_url(third), {"label": "bad"}, **HTMX)  # a single label first
    after_single = snapshot()
    staff_client.post(only_url(first), **HTMX)
    assert undo.undo_depth(staff_client.session) == 2

    staff_client.post(UNDO, **HTMX)  # the whole bulk action
    assert snapshot() == after_single
    response = staff_client.post(UNDO, **HTMX)  # then the single label, answered by its tile
    assert response["HX-Retarget"] == f"#t-c{third.pk}"
    assert third.image_url not in snapshot()


def test_a_single_label_undo_still_answers_with_its_tile(staff_client, poi_with_history):
    pois, (first, second, _, _) = poi_with_history
    before = snapshot()
    staff_client.post(label_url(second), {"label": "bad"}, **HTMX)
    assert undo.undo_depth(staff_client.session) == 1

    response = staff_client.post(UNDO, **HTMX)

    assert response.status_code == 200
    assert response["HX-Retarget"] == f"#t-c{second.pk}"
    assert response["HX-Reswap"] == "outerHTML"
    assert bulk.FOCUS_HEADER not in response
    body = response.content.decode()
    assert f'id="t-c{second.pk}"' in body
    assert f'id="poi-{pois[0].pk}"' not in body and f'id="t-c{first.pk}"' not in body
    assert "Undone: label restored." in body
    assert snapshot() == before  # the colleague's label is back, theirs again


def test_an_entry_stored_before_groups_existed_still_undoes(staff_client, staff):
    """Sessions saved before this change hold single dicts, some without `model_name`."""
    _, _, pois = make_pois(1, 3, image_every=0, flag_every=0)
    first, second, _ = Candidate.objects.filter(poi=pois[0]).order_by("search_rank")
    ImageTrainingData.objects.create(
        poi=pois[0], image_url=first.image_url, label="bad", source="curator", labelled_by=staff
    )
    ImageTrainingData.objects.create(
        poi=pois[0], image_url=second.image_url, label="good", source="curator"
    )
    session = staff_client.session
    session[undo.UNDO_KEY] = [
        {"poi_id": pois[0].pk, "image_url": second.image_url, "previous": None},
        {
            "poi_id": pois[0].pk,
            "image_url": first.image_url,
            "previous": {
                "label": "good",
                "source": "bootstrap",
                "aesthetic_score": 6.5,
                "thumbnail_url": first.thumb_url,
                "labelled_by_id": None,
            },
        },
    ]
    session.save()
    assert undo.undo_depth(staff_client.session) == 2

    response = staff_client.post(UNDO, **HTMX)
    assert response.status_code == 200
    assert response["HX-Retarget"] == f"#t-c{first.pk}"
    row = ImageTrainingData.objects.get(image_url=first.image_url)
    assert (row.label, row.source, row.aesthetic_score, row.labelled_by_id, row.model_name) == (
        "good",
        "bootstrap",
        6.5,
        None,
        "",
    )

    response = staff_client.post(UNDO, **HTMX)
    assert response["HX-Retarget"] == f"#t-c{second.pk}"
    assert "Undone: label removed." in response.content.decode()
    assert not ImageTrainingData.objects.filter(image_url=second.image_url).exists()


def test_an_old_entry_under_a_group_pops_after_it(staff_client):
    _, _, pois = make_pois(1, 3, image_every=0, flag_every=0)
    first, second, _ = Candidate.objects.filter(poi=pois[0]).order_by("search_rank")
    session = staff_client.session
    session[undo.UNDO_KEY] = [
        {"poi_id": pois[0].pk, "image_url": first.image_url, "previous": None}
    ]
    session.save()
    ImageTrainingData.objects.create(poi=pois[0], image_url=first.image_url, label="good")
    staff_client.post(only_url(second), **HTMX)
    assert undo.undo_depth(staff_client.session) == 2

    staff_client.post(UNDO, **HTMX)
    assert dict(ImageTrainingData.objects.values_list("image_url", "label")) == {
        first.image_url: "good"
    }
    staff_client.post(UNDO, **HTMX)
    assert not ImageTrainingData.objects.exists()


def test_the_undo_depth_counts_actions_not_labels():
    session: dict = {}
    single = labels.LabelChange(1, "https://upload.wikimedia.org/a.jpg", None)
    group = [labels.LabelChange(2, f"https://upload.wikimedia.org/{i}.jpg", None) for i in range(5)]
    for _ in range(undo.UNDO_DEPTH - 1):
        undo.push_undo(session, single)
    undo.push_undo_group(session, group)
    assert undo.undo_depth(session) == undo.UNDO_DEPTH  # 49 labels + one group of 5

    undo.push_undo_group(session, group)  # the oldest action drops out, never half a group
    assert undo.undo_depth(session) == undo.UNDO_DEPTH
    step = undo.pop_undo(session)
    assert step.group and step.changes == group and step.poi_id == 2
    step = undo.pop_undo(session)
    assert step.group and step.changes == group
    step = undo.pop_undo(session)
    assert not step.group and step.changes == [single]


def test_a_group_across_pois_is_one_step_and_an_empty_one_is_no_step():
    session: dict = {}
    undo.push_undo_group(session, [])
    assert undo.undo_depth(session) == 0
    mixed = [
        labels.LabelChange(1, "https://upload.wikimedia.org/a.jpg", None),
        labels.LabelChange(2, "https://upload.wikimedia.org/b.jpg", None),
    ]
    undo.push_undo_group(session, mixed)  # a label given to a selection across POIs
    assert undo.undo_depth(session) == 1
    step = undo.pop_undo(session)
    assert step.group and step.poi_ids == [1, 2]


def test_a_group_undo_is_one_transaction(poi_with_history, staff, monkeypatch):
    """A failure half-way leaves every label as the bulk action left it."""
    _, (_, second, _, _) = poi_with_history
    changes = bulk.good_and_others_bad(second, user=staff)
    after = snapshot()
    real_undo, calls = labels.undo, []

    def failing_undo(change):
        calls.append(change)
        if len(calls) == 3:
            raise RuntimeError("database went away")
        real_undo(change)

    monkeypatch.setattr(labels, "undo", failing_undo)
    with pytest.raises(RuntimeError):
        undo.undo_group(changes)
    assert [c.image_url for c in calls] == [c.image_url for c in reversed(changes)][:3]
    assert snapshot() == after


def _with_bulk_step(client: Client, candidate: Candidate, user) -> None:
    """Do an "Only this" outside the client and put its group on the client's undo stack."""
    changes = bulk.good_and_others_bad(candidate, user=user)
    session = client.session
    undo.push_undo_group(session, changes)
    session.save()


def test_undo_is_refused_for_non_staff_and_without_csrf_and_changes_nothing(
    client, plain_client, csrf_client, staff, poi_with_history
):
    _, (_, second, _, _) = poi_with_history
    plain_user = plain_client.session["_auth_user_id"]
    for who in (plain_client, csrf_client):
        _with_bulk_step(who, second, staff)
    after = snapshot()

    for who in (client, plain_client):
        response = who.post(UNDO, **HTMX)
        assert response.status_code == 302 and "/image-ranking/login/" in response["Location"]
    assert csrf_client.post(UNDO, **HTMX).status_code == 403  # no CSRF token
    assert csrf_client.get(UNDO).status_code == 405  # GET changes nothing

    assert snapshot() == after
    assert undo.undo_depth(plain_client.session) == 1
    assert undo.undo_depth(csrf_client.session) == 1
    assert plain_client.session["_auth_user_id"] == plain_user


def test_undo_with_the_csrf_token_works_for_the_same_client(csrf_client, staff, poi_with_history):
    """The refusal above is the missing token, not the group: with it, the undo goes through."""
    _, (_, second, _, _) = poi_with_history
    before = snapshot()
    _with_bulk_step(csrf_client, second, staff)
    csrf_client.get(DASH)  # the page sets the CSRF cookie, as in a browser
    token = csrf_client.cookies["csrftoken"].value
    response = csrf_client.post(UNDO, {"csrfmiddlewaretoken": token}, **HTMX)
    assert response.status_code == 200
    assert snapshot() == before
