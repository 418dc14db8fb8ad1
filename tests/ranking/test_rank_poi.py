"""rank_poi through real HTTP (the Commons stand-in) and the real NIMA model."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone
from PIL import Image

from cities.models import Validation
from image_ranking.models import Candidate, PoiRanking, RankingRun
from image_ranking.pipeline import choice, claims, ranking, storage
from image_ranking.pipeline.ranking import Outcome, rank_poi
from image_ranking.runs.service import select_pois
from image_ranking.runs.tasks import rank_poi_task
from tests.fakes.images import PHOTO_NAMES, degrade, encode, jpeg_bytes, photo
from tests.ranking.helpers import flag_rows as flags_of

from .helpers import (
    FixedScorer,
    animated_gif,
    bomb_png,
    cmyk_jpeg,
    exif_rotated_jpeg,
    palette_png_with_transparency,
    png16,
    scaled,
    store_bytes,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def ranking_settings(settings, nima_scorer):
    settings.IMAGE_RANKING_THUMB_WIDTH = 500
    settings.IMAGE_RANKING_WINNER_WIDTH = 1280
    settings.IMAGE_RANKING_MAX_DISTANCE_KM = 5.0
    settings.IMAGE_RANKING_FALLBACK = False
    return settings


def big(name: str, degraded: str | None = None, width: int = 1600) -> Image.Image:
    """A real photo upscaled past 1280px, so the winner comes from the 1280px rendition."""
    image = photo(name)
    if degraded:
        image = degrade(image, degraded)
    return image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)


def stored_size(poi) -> tuple[int, int]:
    poi.refresh_from_db()
    with poi.image_file.open("rb") as handle:
        return Image.open(io.BytesIO(handle.read())).size


def test_the_original_beats_its_dark_copy_and_is_stored_from_the_1280_rendition(
    commons_server, make_poi, media_root
):
    poi = make_poi("Torre de Belém")
    dark = commons_server.add_file("Belem dark.jpg", big("rocket", "dark"))
    good = commons_server.add_file("Belem.jpg", big("rocket"))
    commons_server.set_results("Torre de Belém", [dark, good])

    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED

    assert len(commons_server.api_requests()) == 1
    winner = Candidate.objects.get(poi=poi, is_winner=True)
    assert winner.title == "File:Belem.jpg"
    assert stored_size(poi) == (800, 534)
    assert poi.image_file.name == "cities/images/pois/lisbon/torre_de_belém.jpg"
    media = [r.path for r in commons_server.media_requests()]
    assert media.count(good.thumb_path(1280)) == 1  # the winner alone at full quality
    assert good.thumb_path(500) in media and dark.thumb_path(500) in media
    assert all(good.path != p for p in media)  # the original was never downloaded
    state = PoiRanking.objects.get(poi=poi)
    assert state.status == PoiRanking.Status.UPDATED
    assert state.best_score == pytest.approx(winner.score)
    assert flags_of(poi) == []


def test_every_bad_thumbnail_only_marks_its_own_candidate(commons_server, make_poi, settings):
    """Ten candidates, each broken or odd in its own way: the good ones are still scored."""
    settings.IMAGE_RANKING_THUMB_MAX_BYTES = 400_000
    poi = make_poi("Castelo de São Jorge")
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 255, (480, 480, 3), np.uint8))
    add = commons_server.add_file
    files = {
        "good": add("Castelo.jpg", jpeg_bytes("coffee", width=480)),
        "truncated": add("Trunc.jpg", jpeg_bytes("rocket", width=480), damage="truncated"),
        "not_image": add("Html.jpg", jpeg_bytes("chelsea", width=480), damage="not_image"),
        "bomb": add("Bomb.png", bomb_png(), mime="image/png", width=400, height=400),
        "cmyk": add("Cmyk.jpg", cmyk_jpeg("chelsea"), width=451, height=300),
        "16bit": add("Deep.png", png16("astronaut"), width=512, height=512),
        "palette": add("Pal.png", palette_png_with_transparency("chelsea")),
        "animated": add("Anim.gif", animated_gif()),
        "rotated": add("Rot.jpg", exif_rotated_jpeg("coffee")),
        "too_large": add("Huge.png", encode(noise, "PNG")),
    }
    commons_server.set_results("Castelo de São Jorge", list(files.values()))

    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED

    rows = {c.title: c for c in Candidate.objects.filter(poi=poi)}
    assert len(rows) == 10
    for key in ("truncated", "not_image", "bomb", "too_large"):
        row = rows[files[key].title]
        assert row.score is None and row.error, key
        assert not row.is_winner
    for key in ("good", "cmyk", "16bit", "palette", "animated", "rotated"):
        row = rows[files[key].title]
        assert row.error == "" and 0 < row.score < 10, key
    best = max((r for r in rows.values() if r.score is not None), key=lambda r: r.score)
    assert best.is_winner
    assert len(commons_server.api_requests()) == 1


def test_bad_originals_fall_through_to_the_next_winner(commons_server, make_poi):
    poi = make_poi("Elevador de Santa Justa")
    broken = commons_server.add_file("Broken.jpg", jpeg_bytes("coffee", width=900))
    fine = commons_server.add_file("Fine.jpg", jpeg_bytes("chelsea"))
    commons_server.set_results("Elevador de Santa Justa", [broken, fine])
    commons_server.fail_always("not_image", path=broken.path)  # thumbnail fine, original junk

    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED
    rows = {c.title: c for c in Candidate.objects.filter(poi=poi)}
    if rows[broken.title].score >= rows[fine.title].score:
        assert "winner download failed" in rows[broken.title].error
    assert rows[fine.title].is_winner
    assert stored_size(poi) == (451, 300)


@pytest.mark.parametrize("where", ["thumbnail", "winner"])
def test_a_passing_fault_on_the_best_candidate_never_leaves_a_lower_one_stored(
    commons_server, make_poi, where
):
    """The best photo's thumbnail or full download fails for a transient reason (retries
    included): nothing is stored, the POI stays missing with the reason, and the next run,
    fault-free, stores the best photo rather than the second."""
    poi = make_poi("Igreja do Carmo")
    best = commons_server.add_file("Carmo.jpg", scaled("chelsea", 1400))
    worse = commons_server.add_file("Carmo dark.jpg", scaled("chelsea", 1400, degraded="dark"))
    commons_server.set_results("Igreja do Carmo", [worse, best])
    path = best.thumb_path(500) if where == "thumbnail" else best.thumb_path(1280)
    commons_server.fail_always("reset", path=path)

    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.FAILED
    poi.refresh_from_db()
    assert not poi.image_file
    [flag] = flags_of(poi)
    assert flag.aggregate == "fetch_failed" and "Incomplete" in flag.description
    assert "Carmo.jpg" in flag.description

    commons_server.clear_faults()
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED
    assert Candidate.objects.get(poi=poi, is_winner=True).title == "File:Carmo.jpg"
    assert flags_of(poi) == []


def test_winner_that_cannot_be_fetched_flags_fetch_failed_and_keeps_the_poi(
    commons_server, make_poi
):
    poi = make_poi("Sé de Lisboa")
    only = commons_server.add_file("Se.jpg", jpeg_bytes("rocket"))
    commons_server.set_results("Sé de Lisboa", [only])
    commons_server.fail_always("not_image", path=only.path)
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.FAILED
    poi.refresh_from_db()
    assert not poi.image_file
    [flag] = flags_of(poi)
    assert flag.aggregate == "fetch_failed" and "Se.jpg" in flag.description


@pytest.mark.parametrize("kind", ["html", "malformed_json", "api_error"])
def test_commons_fault_flags_fetch_failed_then_a_rerun_resolves_it(commons_server, make_poi, kind):
    poi = make_poi("Praça do Comércio")
    photo_file = commons_server.add_file("Praca.jpg", jpeg_bytes("chelsea"))
    commons_server.set_results("Praça do Comércio", [photo_file])
    commons_server.fail_always(kind)
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.FAILED
    [flag] = flags_of(poi)
    assert flag.aggregate == "fetch_failed"
    assert flag.parent == poi.city
    assert PoiRanking.objects.get(poi=poi).validation == flag

    commons_server.clear_faults()
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED
    assert flags_of(poi) == []
    assert PoiRanking.objects.get(poi=poi).validation is None


def test_no_hits_and_only_non_photos_flag_no_images(commons_server, make_poi):
    nothing = make_poi("Nowhere In Particular")
    maps = make_poi("Mapa de Lisboa")
    svg = commons_server.add_file("Map.svg", photo("coffee"), mime="image/svg+xml")
    tiff = commons_server.add_file("Scan.tif", photo("coffee"), mime="image/tiff")
    commons_server.set_results("Mapa de Lisboa", [svg, tiff])
    for poi in (nothing, maps):
        assert rank_poi(poi.pk).outcome == Outcome.FLAGGED
        [flag] = flags_of(poi)
        assert flag.aggregate == "no_images"
        assert PoiRanking.objects.get(poi=poi).status == PoiRanking.Status.FLAGGED
    assert not Candidate.objects.exists()
    assert not any(r.path.endswith((".svg", ".tif")) for r in commons_server.media_requests())


def test_all_below_threshold_flags_with_the_scores_and_reruns_do_not_duplicate(
    commons_server, make_poi
):
    poi = make_poi("Lux Fragil")
    files = [
        commons_server.add_file("Lux a.jpg", jpeg_bytes("chelsea", degraded="blur")),
        commons_server.add_file("Lux b.jpg", jpeg_bytes("coffee", degraded="dark")),
    ]
    commons_server.set_results("Lux Fragil", files)
    for _ in range(3):
        assert rank_poi(poi.pk, threshold=9.9).outcome == Outcome.FLAGGED
    [flag] = flags_of(poi)
    assert flag.aggregate == "below_threshold"
    scores = sorted(Candidate.objects.filter(poi=poi).values_list("score", flat=True))
    assert all(f"{s:.2f}" in flag.description for s in scores)
    assert Candidate.objects.filter(poi=poi).count() == 2  # replaced, not piled up
    assert Validation.objects.filter(context="image_ranking").count() == 1


def test_candidate_far_from_the_poi_cannot_win(commons_server, make_poi):
    poi = make_poi("Pastéis de Belém", coords=(38.69763, -9.20301))
    far = commons_server.add_file("Pasteis Brazil.jpg", big("coffee"), coords=(-23.55, -46.63))
    near = commons_server.add_file("Pasteis.jpg", big("chelsea"), coords=(38.6977, -9.2031))
    commons_server.set_results("Pastéis de Belém", [far, near])
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED
    rows = {c.title: c for c in Candidate.objects.filter(poi=poi)}
    assert not rows[far.title].eligible
    assert "km from the POI" in rows[far.title].ineligible_reason
    assert rows[far.title].distance_km > 5000
    assert rows[near.title].is_winner and rows[near.title].distance_km < 0.1


def test_only_far_candidates_flag_no_images(commons_server, make_poi):
    poi = make_poi("Cristo Rei", coords=(38.6786, -9.1711))
    far = commons_server.add_file("Cristo Rio.jpg", big("rocket"), coords=(-22.95, -43.21))
    commons_server.set_results("Cristo Rei", [far])
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.FLAGGED
    [flag] = flags_of(poi)
    assert flag.aggregate == "no_images" and "too far" in flag.description
    # Its score is shown on its tile, but it is no "best" beside the threshold: it cannot win.
    assert Candidate.objects.get(poi=poi).score is not None
    assert PoiRanking.objects.get(poi=poi).best_score is None


def test_the_best_score_is_the_best_a_winner_could_have(commons_server, make_poi):
    """An ineligible candidate scoring higher than the eligible ones does not set the POI's
    best score (the card's "best" chip and the "Best score" sort)."""
    poi = make_poi("Pastéis de Belém", coords=(38.69763, -9.20301))
    far = commons_server.add_file("Pasteis Brazil.jpg", big("coffee"), coords=(-23.55, -46.63))
    near = commons_server.add_file(
        "Pasteis.jpg", jpeg_bytes("chelsea", degraded="dark"), coords=(38.6977, -9.2031)
    )
    commons_server.set_results("Pastéis de Belém", [far, near])
    rank_poi(poi.pk, threshold=9.9)
    rows = {c.title: c for c in Candidate.objects.filter(poi=poi)}
    assert rows[far.title].score > rows[near.title].rank_score  # the far one scores higher
    assert PoiRanking.objects.get(poi=poi).best_score == rows[near.title].rank_score


def test_scope_all_keeps_an_existing_image_unless_replace_is_asked(
    commons_server, make_poi, media_root
):
    poi = make_poi("Museu do Oriente")
    store_bytes(poi, jpeg_bytes("astronaut"))
    curated = (media_root / poi.image_file.name).read_bytes()
    candidate = commons_server.add_file("Oriente.jpg", big("coffee"))
    commons_server.set_results("Museu do Oriente", [candidate])

    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.RANKED
    poi.refresh_from_db()
    assert (media_root / poi.image_file.name).read_bytes() == curated
    assert Candidate.objects.filter(poi=poi, is_winner=False).count() == 1
    assert not any(r.path == candidate.thumb_path(1280) for r in commons_server.media_requests())

    assert rank_poi(poi.pk, threshold=0, replace_existing=True).outcome == Outcome.UPDATED
    poi.refresh_from_db()
    assert (media_root / poi.image_file.name).read_bytes() != curated
    assert stored_size(poi) == (800, 534)


def awkward_names() -> list[str]:
    long = "Miradouro " + "da Senhora do Monte " * 15  # 310 characters
    names = ["AC/DC Bar", "../../etc/passwd", "..", "Café Nicola", "Pizza 🍕 Lisboa"]
    # PostgreSQL enforces the 200-character column; SQLite (the default) stores 300.
    return [*names, long if connection.vendor == "sqlite" else long[:200]]


def test_awkward_poi_names_are_searched_verbatim_and_stored_inside_the_folder(
    commons_server, make_poi, media_root
):
    folder = (media_root / "cities/images/pois/lisbon").resolve()
    for index, name in enumerate(awkward_names()):
        poi = make_poi(name)
        scene = photo(PHOTO_NAMES[index % 7]).rotate(90 * (index // 7), expand=True)
        file = commons_server.add_file(f"Awkward {index}.jpg", scene)  # each its own photo
        commons_server.set_results(name, [file])
        assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED, name
        assert len(commons_server.api_requests(query=name)) == 1
        poi.refresh_from_db()
        path = (media_root / poi.image_file.name).resolve()
        assert path.parent == folder and path.is_file(), name
    assert len(list(folder.iterdir())) == len(awkward_names())


def test_fallback_image_for_a_flagged_poi_is_replaced_by_a_later_winner(
    commons_server, make_poi, settings
):
    settings.IMAGE_RANKING_FALLBACK = True
    poi = make_poi("Time Out Market", category="eat")
    assert rank_poi(poi.pk).outcome == Outcome.FLAGGED
    poi.refresh_from_db()
    assert poi.image_file.name.endswith("time_out_market.jpg")
    assert stored_size(poi) == (600, 400)  # the "eat" image (coffee, 600x400)
    assert PoiRanking.objects.get(poi=poi).uses_fallback
    assert poi in select_pois("missing")  # still counted as missing a real photo
    assert len(flags_of(poi)) == 1

    file = commons_server.add_file("Time Out.jpg", big("chelsea"))
    commons_server.set_results("Time Out Market", [file])
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED  # no --replace needed
    state = PoiRanking.objects.get(poi=poi)
    assert not state.uses_fallback
    assert stored_size(poi) == (800, 532)
    assert flags_of(poi) == []
    assert poi not in select_pois("missing")


def test_a_poi_claimed_by_a_live_job_is_skipped_without_any_request(commons_server, make_poi):
    poi = make_poi("Oceanário")
    commons_server.set_results(
        "Oceanário", [commons_server.add_file("O.jpg", jpeg_bytes("coffee"))]
    )
    state, token = ranking.claim_poi(poi, run_id=None)
    assert token is not None
    assert ranking.claim_poi(poi, run_id=None)[1] is None  # a second job cannot take it
    assert rank_poi(poi.pk).outcome == Outcome.SKIPPED
    assert commons_server.requests == []
    ranking.release_claim(state, token)
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED


class Killed(BaseException):
    """Stands for the worker's SIGKILL (BaseException: nothing in the code may swallow it)."""


def test_worker_killed_mid_store_then_django_q_retry_finishes_without_orphans(
    commons_server, make_poi, media_root, monkeypatch, settings
):
    poi = make_poi("Panteão Nacional")
    store_bytes(poi, jpeg_bytes("astronaut"), origin=PoiRanking.Origin.FALLBACK)
    ranking_row = PoiRanking.objects.get(poi=poi)  # a replaceable image
    file = commons_server.add_file("Panteao.jpg", big("rocket"))
    commons_server.set_results("Panteão Nacional", [file])
    run = RankingRun.objects.create()
    from django.core.files.storage import FileSystemStorage

    real_save = FileSystemStorage.save

    def killed_between_file_and_row(self, name, content, max_length=None):
        real_save(self, name, content, max_length=max_length)
        raise Killed  # the new file is on disk, the row does not point to it yet

    monkeypatch.setattr(FileSystemStorage, "save", killed_between_file_and_row)
    with pytest.raises(Killed):
        rank_poi_task(poi.pk, threshold=0, run_id=run.pk)
    monkeypatch.setattr(FileSystemStorage, "save", real_save)
    folder = media_root / "cities/images/pois/lisbon"
    assert sorted(p.name for p in folder.iterdir()) == [
        f"panteão_nacional-{poi.pk}.jpg",  # unreferenced
        "panteão_nacional.jpg",  # the fallback image, still the POI's
    ]
    poi.refresh_from_db()
    assert poi.image_file.name.endswith("/panteão_nacional.jpg")
    # SIGKILL runs no `finally`: put back the dead worker's claim, as old as Django-Q's retry.
    stale = timezone.now() - timedelta(seconds=settings.Q_CLUSTER["retry"])
    PoiRanking.objects.filter(pk=ranking_row.pk).update(
        claimed_by=f"{run.pk}:dead", claimed_at=stale
    )

    assert rank_poi_task(poi.pk, threshold=0, run_id=run.pk) == "updated"  # the retry

    assert [p.name for p in folder.iterdir()] == [f"panteão_nacional-{poi.pk}.jpg"]
    assert stored_size(poi) == (800, 534)
    run.refresh_from_db()
    assert (run.tally().processed, run.tally().updated, run.status) == (
        1,
        1,
        RankingRun.Status.FINISHED,
    )
    assert PoiRanking.objects.get(poi=poi).claimed_by == ""


def test_retry_of_a_finished_task_is_not_counted_twice(commons_server, make_poi, monkeypatch):
    """Control flow only: the score is irrelevant, so a fixed scorer replaces NIMA here."""
    monkeypatch.setattr(
        "image_ranking.pipeline.ranking.get_scorer", lambda name=None: FixedScorer()
    )
    poi = make_poi("Estufa Fria")
    commons_server.set_results(
        "Estufa Fria", [commons_server.add_file("E.jpg", jpeg_bytes("coffee"))]
    )
    run = RankingRun.objects.create()
    assert rank_poi_task(poi.pk, threshold=0, run_id=run.pk) == "updated"
    # Django-Q redelivers it (say the ack was lost): its item has ended, so the redelivery
    # does no work (no second Commons request) and the run still counts the POI once.
    requests_before = len(commons_server.api_requests())
    assert rank_poi_task(poi.pk, threshold=0, run_id=run.pk) == "skipped"
    assert len(commons_server.api_requests()) == requests_before
    run.refresh_from_db()
    t = run.tally()
    assert (t.processed, t.updated, t.flagged, t.failed) == (1, 1, 0, 0)


def test_winner_over_the_size_cap_is_refused_and_the_poi_flagged(
    commons_server, make_poi, settings
):
    settings.IMAGE_RANKING_MAX_DOWNLOAD_BYTES = 50_000  # the 1280px rendition is bigger
    poi = make_poi("Aqueduto das Águas Livres")
    file = commons_server.add_file("Aqueduto.jpg", big("rocket"))
    commons_server.set_results("Aqueduto das Águas Livres", [file])
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.FAILED
    poi.refresh_from_db()
    assert not poi.image_file
    [flag] = flags_of(poi)
    assert flag.aggregate == "fetch_failed" and "too_large" in flag.description


def test_thumbnail_redirected_off_the_allow_list_is_never_fetched(
    commons_server, outside_server, make_poi
):
    poi = make_poi("Padrão dos Descobrimentos")
    moved = commons_server.add_file("Padrao moved.jpg", big("coffee"))
    fine = commons_server.add_file("Padrao.jpg", big("chelsea"))
    commons_server.set_results("Padrão dos Descobrimentos", [moved, fine])
    evil = outside_server.add_file("Evil.jpg", big("rocket"))
    commons_server.fail_always(
        "redirect", path=moved.thumb_path(500), location=outside_server.url_for_thumb(evil, 500)
    )
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED
    rows = {c.title: c for c in Candidate.objects.filter(poi=poi)}
    assert rows[moved.title].score is None and "not allowed" in rows[moved.title].error
    assert rows[fine.title].is_winner
    assert outside_server.requests == []


class PrefersBlur:
    """A model that likes blur: the blurrier the image, the higher its score (what NIMA does
    now and then at 224x224, where a blurred copy looks as sharp as its original)."""

    name = "prefers-blur"

    def score(self, images):
        from image_ranking.scoring import ScoreResult
        from tests.scoring.hash_baseline import laplacian_variance

        return [ScoreResult(9.0 - min(8.0, laplacian_variance(i)), 1.0) for i in images]


def test_a_blurred_copy_never_wins_over_its_sharp_original(commons_server, make_poi, monkeypatch):
    """However much the model prefers the blurred copy, the original wins, and the reason
    says why the higher score lost."""
    monkeypatch.setattr(
        "image_ranking.pipeline.ranking.get_scorer", lambda name=None: PrefersBlur()
    )
    poi = make_poi("Convento do Carmo")
    blurred = commons_server.add_file("Carmo blur.jpg", big("chelsea", "blur"))
    original = commons_server.add_file("Carmo.jpg", big("chelsea"))
    commons_server.set_results("Convento do Carmo", [blurred, original])
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED
    rows = {c.title: c for c in Candidate.objects.filter(poi=poi)}
    assert rows["File:Carmo blur.jpg"].score > rows["File:Carmo.jpg"].score  # the model's view
    assert rows["File:Carmo.jpg"].is_winner
    assert rows["File:Carmo blur.jpg"].damage == "blurred copy of File:Carmo.jpg"
    reason = PoiRanking.objects.get(poi=poi).reason
    assert "ranked below it as damaged copies: File:Carmo blur.jpg" in reason
    assert "blurred copy of File:Carmo.jpg" in reason


def test_curator_choice_waits_for_a_running_job(commons_server, make_poi):
    poi = make_poi("Igreja de São Roque")
    file = commons_server.add_file("Roque.jpg", jpeg_bytes("coffee"))
    row = Candidate.objects.create(
        poi=poi, search_rank=1, title=file.title, image_url=commons_server.url_for_original(file)
    )
    state, token = claims.claim_poi(poi, run_id=7)  # a job is ranking this POI
    with pytest.raises(storage.StorageError, match="being ranked right now"):
        choice.use_candidate(row)
    claims.release_claim(state, token)
    choice.use_candidate(row)
    poi.refresh_from_db()
    assert poi.image_file and Candidate.objects.get(pk=row.pk).is_winner


def test_commons_fault_on_a_poi_with_a_curated_image_keeps_it_unflagged(
    commons_server, make_poi, media_root
):
    poi = make_poi("Museu Gulbenkian")
    store_bytes(poi, jpeg_bytes("astronaut"))
    before = (media_root / poi.image_file.name).read_bytes()
    commons_server.fail_always("api_error")
    assert rank_poi(poi.pk, replace_existing=True).outcome == Outcome.FAILED
    poi.refresh_from_db()
    assert (media_root / poi.image_file.name).read_bytes() == before
    assert flags_of(poi) == []
    assert "Commons search failed" in PoiRanking.objects.get(poi=poi).reason


def test_without_a_threshold_the_one_curators_adopted_is_used(commons_server, make_poi, settings):
    from image_ranking.models import AdoptedThreshold

    poi = make_poi("Miradouro da Graca")
    commons_server.set_results(
        "Miradouro da Graca", [commons_server.add_file("Graca.jpg", jpeg_bytes("astronaut"))]
    )
    settings.IMAGE_RANKING_THRESHOLD = 0.0
    AdoptedThreshold.objects.create(model_name=settings.IMAGE_RANKING_MODEL, threshold=9.9)

    assert rank_poi(poi.pk).outcome == Outcome.FLAGGED
    assert flags_of(poi)[0].aggregate == "below_threshold"
    assert PoiRanking.objects.get(poi=poi).threshold == 9.9


def test_a_sharp_photo_is_not_called_blurred_next_to_a_more_detailed_different_photo(
    commons_server, make_poi
):
    """A place's Commons photos are different scenes: a smooth sharp photo (the astronaut) next
    to a texture-rich one (the hubble deep field) keeps its own score, its blurred copy still
    ranks below it, and the best NIMA photo is stored instead of the POI being flagged."""
    poi = make_poi("Centro de Arte Moderna")
    files = [
        commons_server.add_file("CAM view.jpg", big("astronaut")),
        commons_server.add_file("CAM blur.jpg", big("astronaut", "blur")),
        commons_server.add_file("CAM detail.jpg", big("hubble")),
    ]
    commons_server.set_results("Centro de Arte Moderna", files)
    assert rank_poi(poi.pk, threshold=4.5).outcome == Outcome.UPDATED
    rows = {c.title: c for c in Candidate.objects.filter(poi=poi)}
    view, detail = rows["File:CAM view.jpg"], rows["File:CAM detail.jpg"]
    assert view.score > detail.score and view.score >= 4.5
    assert view.is_winner
    expected = f"Stored File:CAM view.jpg (score {view.score:.2f})"
    blur = rows["File:CAM blur.jpg"]
    if blur.score > view.score:  # only the blurred copy is named, with the photo it copies
        expected += (
            f"; ranked below it as damaged copies: File:CAM blur.jpg ({blur.score:.2f}, "
            "blurred copy of File:CAM view.jpg)"
        )
    assert blur.damage == "blurred copy of File:CAM view.jpg"  # shown on its tile
    assert PoiRanking.objects.get(poi=poi).reason == expected


def test_all_below_threshold_reason_names_the_sharp_copy_a_blurred_one_was_ranked_under(
    commons_server, make_poi
):
    poi = make_poi("Palácio Pimenta")
    files = [
        commons_server.add_file("Pimenta.jpg", big("hubble")),
        commons_server.add_file("Pimenta blur.jpg", big("hubble", "blur")),
    ]
    commons_server.set_results("Palácio Pimenta", files)
    assert rank_poi(poi.pk, threshold=9.0).outcome == Outcome.FLAGGED
    reason = PoiRanking.objects.get(poi=poi).reason
    blur = Candidate.objects.get(poi=poi, title="File:Pimenta blur.jpg").score
    assert f"{blur:.2f} (blurred copy of File:Pimenta.jpg, ranked {blur - 1:.2f})" in reason


def test_hostile_but_legal_thumbnails_are_scored_at_a_bounded_size(
    commons_server, make_poi, monkeypatch
):
    """Ten 7000x7000 'thumbnails' (Commons says 400 px, so they are fetched as they are): the
    batch the model sees holds none larger than twice the scoring width
    (bench/memory.py measures the worker's RSS)."""
    seen = []

    class RecordingScorer(FixedScorer):
        def score(self, images):
            seen.extend(images)
            return super().score(images)

    monkeypatch.setattr(
        "image_ranking.pipeline.ranking.get_scorer", lambda name=None: RecordingScorer()
    )
    poi = make_poi("Hostile")
    files = [
        commons_server.add_file(
            f"H{i}.jpg",
            encode(photo(PHOTO_NAMES[i % 7]).rotate(i * 5).resize((7000, 7000)), "JPEG"),
            width=400,
            height=400,
        )
        for i in range(10)
    ]
    commons_server.set_results("Hostile", files)
    assert rank_poi(poi.pk, threshold=0).outcome == Outcome.UPDATED
    assert len(seen) == 10 and all(max(image.size) <= 1000 for image in seen)
