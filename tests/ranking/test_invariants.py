"""The POI-state invariants, decided inside one transaction under the POI's claim:

- a POI's image, origin, stored-file identity, winner, status and flag change together, or not
  at all when anything fails in between;
- a photo taken from another POI (which the photo names) leaves that POI whole: no image, no
  winner, one `shared_photo` flag; never taken from a POI a job is ranking right now;
- a failure is written under the POI's claim: not over a live job's work;
- the authoritative "another POI's photo" check runs at commit, so a photo another POI stored
  while this one downloaded is refused;
- a curator's "Use this image" whose download must wait is finished by a background task.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from django_q.models import OrmQ

from cities.models import PointOfInterest
from image_ranking.commons import ratelimit
from image_ranking.models import Candidate, PoiRanking, RankablePoi, RankingRun, RankingRunItem
from image_ranking.pipeline import choice, claims, outcome, storage
from image_ranking.pipeline.ranking import Outcome, rank_poi
from tests.fakes.images import photo
from tests.ranking.helpers import FixedScorer, flags_of, scaled, store_bytes

pytestmark = pytest.mark.django_db
Origin = PoiRanking.Origin
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def fixed_scorer(monkeypatch):
    monkeypatch.setattr(
        "image_ranking.pipeline.ranking.get_scorer", lambda name=None: FixedScorer()
    )


def snapshot(poi) -> tuple:
    poi = PointOfInterest.objects.get(pk=poi.pk)
    ranking = PoiRanking.objects.filter(poi=poi).first()
    winners = list(Candidate.objects.filter(poi=poi, is_winner=True).values_list("sha1", flat=True))
    return (
        poi.image_file.name or "",
        ranking.image_origin if ranking else "",
        ranking.image_sha1 if ranking else "",
        winners,
    )


def files_in(media_root) -> list[str]:
    return sorted(str(p.relative_to(media_root)) for p in media_root.rglob("*") if p.is_file())


@pytest.fixture
def gardens(make_poi, commons_server):
    """Lisbon's POI got the Ajuda gardens photo first (an older run); Ajuda's search finds it."""
    lisbon, ajuda = make_poi("Lisbon Botanical Gardens"), make_poi("Ajuda Botanical Gardens")
    shared = commons_server.add_file(
        "Ajuda gardens entrance.jpg", photo("coffee"), categories=["Ajuda Botanical Gardens"]
    )
    commons_server.set_results("Ajuda Botanical Gardens", [shared])
    store_bytes(lisbon, shared.data, origin=Origin.PIPELINE)
    PoiRanking.objects.filter(poi=lisbon).update(
        image_sha1=shared.sha1, image_title=shared.title, status=PoiRanking.Status.UPDATED
    )
    Candidate.objects.create(
        poi=lisbon, search_rank=1, title=shared.title, sha1=shared.sha1, is_winner=True,
        image_url=commons_server.url_for_original(shared), categories=["Ajuda Botanical Gardens"],
    )  # fmt: skip
    return lisbon, ajuda, shared


def test_the_poi_the_photo_names_takes_it_and_the_other_loses_it_whole(
    gardens, fixed_scorer, media_root
):
    lisbon, ajuda, shared = gardens
    old_file = media_root / PointOfInterest.objects.get(pk=lisbon.pk).image_file.name

    assert rank_poi(ajuda.pk, threshold=0).outcome == Outcome.UPDATED

    assert snapshot(ajuda)[1:] == (Origin.PIPELINE, shared.sha1, [shared.sha1])
    assert snapshot(lisbon) == ("", Origin.EXISTING, "", [])  # no image, no winner
    assert flags_of(lisbon) == ["shared_photo"] and flags_of(ajuda) == []
    assert not old_file.exists()
    lisbon_now = RankablePoi.objects.get(pk=lisbon.pk)
    assert RankablePoi.objects.missing().filter(pk=lisbon.pk).exists()  # not imaged ...
    assert RankablePoi.objects.flagged().filter(pk=lisbon.pk).exists()  # ... but flagged
    assert not lisbon_now.image_file
    reason = PoiRanking.objects.get(poi=lisbon).reason
    assert f"names {ajuda.name} (POI {ajuda.pk}), which now has it" in reason
    taken = Candidate.objects.get(poi=lisbon, sha1=shared.sha1)
    assert not taken.eligible and "the photo of Ajuda Botanical Gardens" in taken.ineligible_reason


def test_a_photo_is_never_taken_from_a_poi_a_job_is_ranking(gardens, fixed_scorer):
    lisbon, ajuda, _ = gardens
    before = snapshot(lisbon)
    held, token = claims.claim_poi(lisbon, run_id=9)  # a job is ranking Lisbon right now
    try:
        assert rank_poi(ajuda.pk, threshold=0).outcome == Outcome.FLAGGED
    finally:
        claims.release_claim(held, token)
    assert snapshot(lisbon) == before and flags_of(lisbon) == []
    assert flags_of(ajuda) == ["shared_photo"] and snapshot(ajuda)[0] == ""


class Boom(Exception):
    pass


def test_a_failure_inside_the_outcome_transaction_changes_nothing_of_the_image(
    make_poi, commons_server, fixed_scorer, media_root, monkeypatch
):
    poi = make_poi("Panteão Nacional")
    file = commons_server.add_file("Panteao.jpg", scaled("rocket", 900))
    commons_server.set_results("Panteão Nacional", [file])

    def fail_after_the_switch(*args, **kwargs):
        raise Boom("the database went away after the image row was switched")

    monkeypatch.setattr(outcome.flags, "resolve_flag", fail_after_the_switch)
    result = rank_poi(poi.pk, threshold=0)

    assert result.outcome == Outcome.FAILED and "Boom" in result.reason
    assert snapshot(poi) == ("", "", "", [])  # image, origin, identity, winner: all old
    assert files_in(media_root) == []  # the written file was discarded
    ranking = PoiRanking.objects.get(poi=poi)
    assert ranking.status == PoiRanking.Status.FAILED and ranking.claimed_by == ""
    assert flags_of(poi) == ["internal_error"]


def test_a_failure_is_not_written_over_a_live_jobs_work(make_poi):
    poi = make_poi("Busy")
    held, token = claims.claim_poi(poi, run_id=3)
    PoiRanking.objects.filter(pk=held.pk).update(status=PoiRanking.Status.PENDING)
    assert outcome.fail(poi.pk, "its task is gone from the queue") is False
    ranking = PoiRanking.objects.get(poi=poi)
    assert ranking.status == PoiRanking.Status.PENDING and flags_of(poi) == []
    claims.release_claim(held, token)
    assert outcome.fail(poi.pk, "its task is gone from the queue") is True
    assert PoiRanking.objects.get(poi=poi).status == PoiRanking.Status.FAILED
    assert flags_of(poi) == ["internal_error"]


def test_the_sweep_leaves_a_claimed_poi_to_the_job_that_holds_it(make_poi, commons_server):
    from django.utils import timezone
    from django_q.models import Task

    from image_ranking.runs import service, sweep

    poi = make_poi("Redelivered")
    run = service.start_run(poi_ids=[poi.pk])
    item = RankingRunItem.objects.get(run=run)
    RankingRunItem.objects.filter(pk=item.pk).update(outcome="running", started_at=timezone.now())
    Task.objects.create(
        id=item.task_id,
        name="x",
        func="f",
        started=timezone.now(),
        stopped=timezone.now(),
        success=False,
        result="worker crashed",
    )  # fmt: skip  (its first delivery ended without recording) ...
    held, token = claims.claim_poi(poi, run_id=run.pk)  # ... while a second one ranks it
    assert sweep.sweep_run(run, force=True) == 1
    assert RankingRunItem.objects.get(pk=item.pk).outcome == "failed"
    assert PoiRanking.objects.get(poi=poi).status == PoiRanking.Status.PENDING
    assert flags_of(poi) == []  # the live job records the POI's own outcome
    claims.release_claim(held, token)


@pytest.fixture
def staff_client(django_user_model):
    from django.test import Client

    client = Client()
    client.force_login(django_user_model.objects.create_user("curator", is_staff=True))
    return client


@pytest.fixture
def choice_of(make_poi, commons_server):
    """A POI without an image and one candidate a curator may choose, on the stand-in."""
    poi = make_poi("Mosteiro dos Jerónimos")
    file = commons_server.add_file("Jeronimos.jpg", scaled("astronaut", 900))
    cand = Candidate.objects.create(
        poi=poi, search_rank=1, title=file.title, sha1=file.sha1, width=file.width,
        height=file.height, image_url=commons_server.url_for_original(file),
        thumb_url=commons_server.url_for_thumb(file, 330), score=5.0,
    )  # fmt: skip
    return poi, cand, file


def test_a_photo_another_poi_stored_during_the_download_is_refused_at_commit(
    choice_of, make_poi, media_root, monkeypatch
):
    poi, cand, file = choice_of
    other = make_poi("Torre de Belém")
    store_bytes(other, scaled("rocket", 600), origin=Origin.PIPELINE)
    real_write = storage.write_file

    def another_job_stores_it_meanwhile(*args, **kwargs):
        name = real_write(*args, **kwargs)
        PoiRanking.objects.filter(poi=other).update(image_sha1=file.sha1, image_title=file.title)
        return name

    monkeypatch.setattr(storage, "write_file", another_job_stores_it_meanwhile)
    assert choice.taken_by(cand) is None  # the early look saw nothing
    with pytest.raises(choice.NotUsed, match=f"already the photo of {other.name}"):
        choice.use_candidate(cand)
    assert snapshot(poi) == ("", "", "", [])
    assert files_in(media_root) == [PointOfInterest.objects.get(pk=other.pk).image_file.name]


def test_use_this_image_that_must_wait_answers_at_once_and_finishes_in_the_background(
    choice_of, staff_client, media_root
):
    from image_ranking.runs.tasks import use_candidate_task

    poi, cand, file = choice_of
    ratelimit.media_limiter().block_for(60)  # Commons said: wait a minute
    try:
        response = staff_client.post(reverse("image_ranking:use_candidate", args=[cand.pk]), **HTMX)
    finally:
        ratelimit.reset_local_limits()
    assert response.status_code == 200
    assert "Commons asks us to wait" in response.text
    assert "Storing the chosen image" in response.text  # the card follows the background run
    assert snapshot(poi) == ("", "", "", [])  # nothing stored in the request
    run = RankingRun.objects.get(kind=RankingRun.Kind.USE)
    assert run.candidate_id == cand.pk and run.is_active

    [task] = [row.task for row in OrmQ.objects.all()]  # what a Django-Q worker runs
    assert use_candidate_task(*task["args"], **task["kwargs"]) == "updated"

    image, origin, sha1, winners = snapshot(poi)
    assert image and (origin, sha1, winners) == (Origin.CURATOR, file.sha1, [file.sha1])
    run.refresh_from_db()
    assert run.status == RankingRun.Status.FINISHED
    assert RankingRunItem.objects.get(run=run).outcome == "updated"
