"""Winner storage: what a curator finds on disk, and that a failure or a crash loses nothing."""

from __future__ import annotations

import io

import pytest
from django.db import connection
from django.utils import timezone
from PIL import Image

from cities.models import PointOfInterest
from image_ranking.models import Candidate, PoiRanking
from image_ranking.pipeline import choice, storage
from tests.fakes.images import encode, jpeg_bytes, photo

from .helpers import (
    animated_gif,
    bomb_png,
    cmyk_jpeg,
    exif_rotated_jpeg,
    palette_png_with_transparency,
    png16,
    store_bytes,
)

pytestmark = pytest.mark.django_db


def stored(poi: PointOfInterest) -> Image.Image:
    poi.refresh_from_db()
    with poi.image_file.open("rb") as handle:
        image = Image.open(io.BytesIO(handle.read()))
        image.load()
    return image


def test_large_photo_shrinks_to_fit_800x600_keeping_aspect(make_poi, media_root):
    poi = make_poi("Torre de Belém")
    big = photo("astronaut").resize((2048, 2048))
    store_bytes(poi, encode(big))
    image = stored(poi)
    assert image.size == (600, 600)
    assert image.format == "JPEG"
    assert poi.image_file.name == "cities/images/pois/lisbon/torre_de_belém.jpg"
    assert (media_root / poi.image_file.name).is_file()


def test_small_photo_is_never_enlarged(make_poi):
    poi = make_poi("Small")
    store_bytes(poi, jpeg_bytes("chelsea", width=300))
    assert stored(poi).size == (300, 200)


def test_exif_rotated_photo_is_stored_upright(make_poi):
    poi = make_poi("Rotated")
    store_bytes(poi, exif_rotated_jpeg("rocket"))
    image = stored(poi)
    assert image.width > image.height  # the rocket photo is landscape when shown upright
    assert image.getexif().get(0x0112) in (None, 1)


@pytest.mark.parametrize(
    ("data", "fmt", "suffix"),
    [
        (cmyk_jpeg(), "JPEG", ".jpg"),
        (png16(), "PNG", ".png"),
        (palette_png_with_transparency(), "PNG", ".png"),
        (animated_gif(), "GIF", ".gif"),
    ],
    ids=["cmyk", "16-bit", "palette+transparency", "animated-gif"],
)
def test_unusual_formats_are_stored_in_their_family(make_poi, data, fmt, suffix):
    poi = make_poi(f"Odd {fmt} {suffix}")
    store_bytes(poi, data)
    image = stored(poi)
    assert image.format == fmt
    assert poi.image_file.name.endswith(suffix)
    assert getattr(image, "n_frames", 1) == 1  # an animation keeps its first frame only
    if suffix == ".jpg":
        assert image.mode == "RGB"


def test_palette_transparency_survives(make_poi):
    poi = make_poi("Transparent")
    store_bytes(poi, palette_png_with_transparency())
    image = stored(poi).convert("RGBA")
    assert image.getextrema()[3][0] == 0  # some pixels are still fully transparent


@pytest.mark.parametrize(
    "make_data",
    [lambda: jpeg_bytes("coffee")[:5000], lambda: b"<html>not an image</html>", bomb_png],
    ids=["truncated", "not-an-image", "decompression-bomb"],
)
def test_bad_bytes_leave_the_old_image_untouched(make_poi, media_root, make_data):
    data = make_data()
    poi = make_poi("Keeps its photo")
    store_bytes(poi, jpeg_bytes("chelsea"))
    old_name = poi.image_file.name
    old_bytes = (media_root / old_name).read_bytes()
    with pytest.raises(storage.StorageError):
        store_bytes(poi, data)
    poi.refresh_from_db()
    assert poi.image_file.name == old_name
    assert (media_root / old_name).read_bytes() == old_bytes


def test_replacing_removes_the_old_file_and_changes_format(make_poi, media_root):
    poi = make_poi("Swap")
    store_bytes(poi, jpeg_bytes("chelsea"))
    old = media_root / poi.image_file.name
    store_bytes(poi, palette_png_with_transparency())
    poi.refresh_from_db()
    assert not old.exists()
    assert poi.image_file.name.endswith(".png")
    assert sorted(p.name for p in old.parent.iterdir()) == ["swap.png"]


def test_labels_of_a_replaced_image_do_not_carry_over_to_the_new_one(make_poi):
    from image_ranking.models import ImageTrainingData

    poi = make_poi("Relabel")
    store_bytes(poi, jpeg_bytes("chelsea"))
    old_url = poi.image_file.url
    ImageTrainingData.objects.create(poi=poi, image_url=old_url, label="bad")
    candidate_label = ImageTrainingData.objects.create(
        poi=poi, image_url="https://upload.example/other.jpg", label="good"
    )

    store_bytes(poi, jpeg_bytes("coffee"))

    poi.refresh_from_db()
    assert poi.image_file.url != old_url  # the new file never overwrites the old one
    assert list(ImageTrainingData.objects.filter(poi=poi)) == [candidate_label]
    store_bytes(poi, jpeg_bytes("rocket"))
    poi.refresh_from_db()
    assert poi.image_file.url == old_url  # the names alternate: this one is free again


def test_names_with_slashes_dots_accents_emoji_and_300_chars_stay_in_the_folder(
    make_poi, media_root
):
    # PostgreSQL enforces the 200-character column; SQLite (the default) stores 300.
    longest = 300 if connection.vendor == "sqlite" else 200
    names = ["../../settings", "a/b\\c", "..", "Café São Jorge", "Pizza 🍕 Place", "x" * longest]
    for name in names:
        poi = make_poi(name)
        store_bytes(poi, jpeg_bytes("coffee", width=400))
        poi.refresh_from_db()
        path = (media_root / poi.image_file.name).resolve()
        assert path.is_relative_to((media_root / "cities/images/pois/lisbon").resolve())
        assert path.is_file()
    assert not (media_root.parent / "settings.jpg").exists()


class Killed(BaseException):
    """Stands for SIGKILL between two steps (BaseException, so no handler swallows it)."""


def kill_after_writing(monkeypatch, media_root) -> None:
    """The worker dies right after the new file is written, before the row is switched."""
    from django.core.files.storage import FileSystemStorage

    real_save = FileSystemStorage.save

    def save_then_die(self, name, content, max_length=None):
        real_save(self, name, content, max_length=max_length)
        monkeypatch.setattr(FileSystemStorage, "save", real_save)
        raise Killed

    monkeypatch.setattr(FileSystemStorage, "save", save_then_die)


def test_worker_killed_after_writing_the_file_keeps_the_old_image_and_the_retry_cleans_up(
    make_poi, media_root, monkeypatch
):
    poi = make_poi("Killed mid swap")
    store_bytes(poi, jpeg_bytes("chelsea"))
    kill_after_writing(monkeypatch, media_root)
    with pytest.raises(Killed):
        store_bytes(PointOfInterest.objects.get(pk=poi.pk), jpeg_bytes("rocket"))
    folder = media_root / "cities/images/pois/lisbon"
    assert sorted(p.name for p in folder.iterdir()) == [
        f"killed_mid_swap-{poi.pk}.jpg",  # the orphan: no row points to it
        "killed_mid_swap.jpg",
    ]
    assert stored(poi).size == (451, 300)  # the old image, untouched (chelsea)

    store_bytes(PointOfInterest.objects.get(pk=poi.pk), jpeg_bytes("rocket"))
    assert [p.name for p in folder.iterdir()] == [f"killed_mid_swap-{poi.pk}.jpg"]
    assert stored(poi).size == (640, 427)  # rocket


def test_a_failed_write_leaves_the_old_image_in_place(make_poi, media_root, monkeypatch):
    from django.core.files.storage import FileSystemStorage

    poi = make_poi("Disk full")
    store_bytes(poi, jpeg_bytes("chelsea"))
    before = poi.image_file.name

    def disk_full(self, name, content, max_length=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FileSystemStorage, "save", disk_full)
    with pytest.raises(storage.StorageError, match="No space left"):
        store_bytes(PointOfInterest.objects.get(pk=poi.pk), jpeg_bytes("rocket"))
    poi.refresh_from_db()
    assert poi.image_file.name == before and stored(poi).size == (451, 300)


def test_two_same_named_pois_of_a_city_get_two_files_and_keep_their_own_photos(
    make_poi, media_root
):
    first, second = make_poi("The Crown"), make_poi("The Crown")  # London has 26 such pairs
    for _ in range(2):  # and each is replaced once more
        store_bytes(PointOfInterest.objects.get(pk=first.pk), jpeg_bytes("chelsea"))
        store_bytes(PointOfInterest.objects.get(pk=second.pk), jpeg_bytes("rocket"))
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.image_file.name != second.image_file.name
    assert stored(first).size == (451, 300) and stored(second).size == (640, 427)
    folder = media_root / "cities/images/pois/lisbon"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [first.image_file.name.rsplit("/", 1)[1], second.image_file.name.rsplit("/", 1)[1]]
    )


def test_an_unreferenced_file_at_a_namesakes_name_is_left_while_that_poi_is_being_ranked(
    make_poi, media_root
):
    from image_ranking.models import PoiRanking

    writer, other = make_poi("Twin"), make_poi("Twin")
    folder = media_root / "cities/images/pois/lisbon"
    folder.mkdir(parents=True)
    (folder / "twin.jpg").write_bytes(b"being written by the other job")
    PoiRanking.objects.create(poi=writer, claimed_by="7:job", claimed_at=timezone.now())
    store_bytes(other, jpeg_bytes("coffee"))
    assert (folder / "twin.jpg").read_bytes() == b"being written by the other job"
    assert other.image_file.name.endswith(f"twin-{other.pk}.jpg")


def test_store_from_url_and_candidate_choice(commons_server, make_poi, media_root):
    """A curator's "use this image": the 1280px rendition is fetched, the winner marked."""
    poi = make_poi("Mosteiro dos Jerónimos")
    big = commons_server.add_file("Jeronimos.jpg", photo("astronaut").resize((2000, 2000)))
    other = commons_server.add_file("Other.jpg", jpeg_bytes("coffee"))
    rows = []
    for rank, file in enumerate([big, other], start=1):
        rows.append(
            Candidate.objects.create(
                poi=poi,
                search_rank=rank,
                title=file.title,
                image_url=commons_server.url_for_original(file),
                thumb_url=commons_server.url_for_thumb(file, 330) if file.width > 330 else "",
                width=file.width,
                height=file.height,
                score=5.0,
                is_winner=rank == 2,
            )
        )
    choice.use_candidate(rows[0])
    assert stored(poi).size == (600, 600)
    paths = [r.path for r in commons_server.media_requests()]
    assert paths == [big.thumb_path(1280)]  # the standard rendition, not the 2000px original
    assert [c.is_winner for c in Candidate.objects.filter(poi=poi).order_by("search_rank")] == [
        True,
        False,
    ]
    assert PoiRanking.objects.get(poi=poi).status == PoiRanking.Status.UPDATED


def test_winner_url_prefers_rendition_and_falls_back_to_original(settings):
    cand = Candidate(
        image_url="https://upload.wikimedia.org/wikipedia/commons/a/ab/X.jpg",
        thumb_url="https://upload.wikimedia.org/wikipedia/commons/thumb/a/ab/X.jpg/330px-X.jpg",
        width=4000,
    )
    assert storage.winner_url(cand).endswith("/1280px-X.jpg")
    settings.IMAGE_RANKING_WINNER_WIDTH = 0
    assert storage.winner_url(cand) == cand.image_url
    settings.IMAGE_RANKING_WINNER_WIDTH = 1280
    cand.width = 1000  # smaller than the rendition: the original is the better (only) choice
    assert storage.winner_url(cand) == cand.image_url


def test_a_rendition_without_a_thumbnail_url_is_refused_not_replaced_by_the_original():
    from image_ranking.commons.renditions import rendition_or_original

    original = "https://upload.wikimedia.org/wikipedia/commons/a/ab/Scan.jpg"
    huge = Candidate(image_url=original, thumb_url=original, width=12000)  # thumberror
    with pytest.raises(ValueError, match="no thumbnail URL"):
        rendition_or_original(huge, 500)
    assert rendition_or_original(huge, 0) == original  # the original, when asked for
