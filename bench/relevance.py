"""Wrong-place winners with and without the relevance checks, side by side.

Each scenario is a pair of POIs of one city whose names overlap, as in the issue's misses
("Lisbon Botanical Gardens" / "Ajuda Botanical Gardens", "Museum of the City of New York" /
"Museum of the Moving Image"), ranked end to end against the Commons stand-in with the real
NIMA model (limiter off):
- title: the first hit is titled for the other POI (and is the more beautiful photo), the POI's
  own photo is in a category that names it;
- shared: both POIs' searches find the same file, which names the second POI;
- depth: the first 12 hits are the other POI's photos, the POI's own one is hit 13.
A winner is wrong when it shows the other POI (its title or categories name that one). The
baseline is the same pipeline with the title/category checks and the shared-photo rule off and
10 hits searched, as before.

Run: .venv/bin/python bench/relevance.py   (about a minute)
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from offline_django import setup

WORK = setup("bench-relevance-")

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from PIL import Image  # noqa: E402

from cities.models import City, PoiList, PointOfInterest  # noqa: E402
from image_ranking.models import Candidate, PoiRanking  # noqa: E402
from image_ranking.pipeline import ranking, relevance, shared_photos  # noqa: E402
from tests.fakes.commons_server import CommonsServer  # noqa: E402
from tests.fakes.images import PHOTO_NAMES, degrade, photo  # noqa: E402

PAIRS = [
    ("Lisbon", "Lisbon Botanical Gardens", "Ajuda Botanical Gardens"),
    ("New York", "Museum of the City of New York", "Museum of the Moving Image"),
    ("Rome", "Palazzo Massimo", "Palazzo Massimo alle Colonne"),
    ("Paris", "Musée d'Orsay", "Gare d'Orsay Museum"),
    ("London", "Tower of London", "Tower Bridge of London"),
    ("Dublin", "Trinity College", "Trinity College Library"),
]
TURNS = list(Image.Transpose)


def scene(index: int) -> Image.Image:
    image = photo(PHOTO_NAMES[index % len(PHOTO_NAMES)])
    return image.transpose(TURNS[(index // len(PHOTO_NAMES)) % len(TURNS)])


def build(server: CommonsServer) -> list[tuple[str, int, str]]:
    """The scenarios: (kind, POI id, the other POI's name)."""
    call_command("migrate", verbosity=0)
    cases, n = [], 0
    for city_name, mine, theirs in PAIRS:
        for kind in ("title", "shared", "depth"):
            city = City.objects.create(name=f"{city_name} ({kind})")
            listed = PoiList.objects.create(title="Sights", city=city)
            poi = PointOfInterest.objects.create(city=city, name=mine, category="see")
            other = PointOfInterest.objects.create(city=city, name=theirs, category="see")
            listed.pois.add(poi, other)
            own = server.add_file(
                f"{kind} {n} view.jpg", degrade(scene(n), "dark"), categories=[mine]
            )
            n += 1
            if kind == "title":
                theirs_file = server.add_file(f"{theirs} {n}.jpg", scene(n))
                server.set_results(mine, [theirs_file, own])
            elif kind == "shared":
                shared = server.add_file(f"Photo {n}.jpg", scene(n), categories=[theirs])
                server.set_results(theirs, [shared])
                server.set_results(mine, [shared, own])
                cases.append(("shared-first", other.pk, mine))  # ranked first, for the other
            else:
                strangers = [
                    server.add_file(f"{theirs} {n} {i}.jpg", scene(n + 50 + i)) for i in range(12)
                ]
                server.set_results(mine, [*strangers, own])
            n += 1
            cases.append((kind, poi.pk, theirs))
    return cases


@contextmanager
def checks_off():
    """The baseline: no title/category relevance, no shared-photo rule, 10 hits."""
    saved = relevance.assess, shared_photos.conflict, settings.IMAGE_RANKING_SEARCH_DEPTH
    relevance.assess = lambda *args, **kwargs: relevance.Evidence()
    shared_photos.conflict = lambda *args, **kwargs: None
    settings.IMAGE_RANKING_SEARCH_DEPTH = 10
    try:
        yield
    finally:
        relevance.assess, shared_photos.conflict, settings.IMAGE_RANKING_SEARCH_DEPTH = saved


def run(cases: list[tuple[str, int, str]]) -> dict[str, list[int]]:
    for poi in PointOfInterest.objects.all():
        poi.delete_image_file()
    Candidate.objects.all().delete()
    PoiRanking.objects.all().delete()
    wrong: dict[str, list[int]] = {}
    order = sorted(cases, key=lambda c: c[0] != "shared-first")
    for kind, poi_id, other_name in order:
        ranking.rank_poi(poi_id, threshold=0)
        won = Candidate.objects.filter(poi_id=poi_id, is_winner=True).first()
        bad = (
            won is not None
            and relevance.Place.of(other_name).named_in(
                relevance.words(won.title) | relevance.words(" ".join(won.categories))
            )
            and kind != "shared-first"
        )
        key = kind if kind != "shared-first" else "shared"
        wrong.setdefault(key, [0, 0])
        wrong[key][0] += int(bool(bad))
        wrong[key][1] += int(kind != "shared-first")
    return wrong


def main() -> None:
    server = CommonsServer().start()
    settings.WIKIMEDIA_API_URL = server.api_url
    settings.IMAGE_DOWNLOAD_ORIGINS = [server.origin]
    try:
        cases = build(server)
        with checks_off():
            before = run(cases)
        after = run(cases)
        requests = len(server.api_requests())
    finally:
        server.stop()
    print(f"{len(PAIRS)} pairs of same-city POIs with overlapping names; NIMA, threshold 0")
    print(f"{'wrong-place winners':32}{'checks off (baseline)':>24}{'relevance checks':>20}")
    for kind, label in (
        ("title", "first hit titled for the other"),
        ("shared", "same file found for both"),
        ("depth", "own photo at hit 13"),
    ):
        b, a = before[kind], after[kind]
        print(f"{label:32}{f'{b[0]}/{b[1]}':>24}{f'{a[0]}/{a[1]}':>20}")
    total_before = sum(v[0] for v in before.values())
    total_after = sum(v[0] for v in after.values())
    print(f"{'all':32}{total_before:>24}{total_after:>20}")
    ranked = 2 * sum(v[1] for v in before.values()) + 2 * len(PAIRS)
    print(f"API requests per POI ranked: {requests / ranked:.2f}")


if __name__ == "__main__":
    main()
