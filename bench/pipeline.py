"""End-to-end ranking speed against the Commons stand-in (limiter off), with a baseline.

Each POI gets 10 candidates (real photos of different quality, 1600px originals, so the
pipeline fetches 500px renditions to score and the winner's 1280px rendition), and the whole
per-POI pipeline runs in this process exactly as `rank_poi_images --sync` does: one API
request, thumbnails over HTTP, one scoring batch, candidates saved, the winner stored.

Baseline, same run with each candidate scored on its own (one model call per image, as a
per-image loop would), side by side with the ratio. API requests per POI are counted on the
stand-in's log; the original city_wiki code needed 11 (search + one imageinfo per hit).

The same-scene test (scoring/scenes.py) is timed inside the pipeline run: the features of each
candidate and the matches of a POI's pairs, as the damage ranking computes them, reported per
POI, per pair and as a share of the run; CPU time is the process's (the stand-in serves from a
thread of the same process, so its CPU counts too).

Run: .venv/bin/python bench/pipeline.py [--pois 30]   (target: >= 2 POIs/s)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from offline_django import setup

WORK = setup("bench-pipeline-")

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from PIL import Image  # noqa: E402

from cities.models import City, PoiList, PointOfInterest  # noqa: E402
from image_ranking import scoring  # noqa: E402
from image_ranking.models import Candidate, PoiRanking, RankingRun  # noqa: E402
from image_ranking.runs.service import start_run  # noqa: E402
from image_ranking.scoring import scene_features, scenes  # noqa: E402
from tests.fakes.commons_server import CommonsServer  # noqa: E402
from tests.fakes.images import PHOTO_NAMES, degrade, photo  # noqa: E402

CANDIDATES = 10
ORIGINAL_WIDTH = 1600


class PerImageScorer:
    """The baseline: the same model, called once per image instead of once per POI."""

    def __init__(self, scorer) -> None:
        self.inner, self.name = scorer, scorer.name

    def score(self, images):
        return [self.inner.score([image])[0] for image in images]


def versions() -> list[tuple[str, Image.Image]]:
    out = []
    for name in PHOTO_NAMES:
        base = photo(name)
        for kind in (None, "dark", "blur", "crop"):
            image = degrade(base, kind) if kind else base
            height = round(image.height * ORIGINAL_WIDTH / image.width)
            out.append((f"{name}-{kind or 'original'}", image.resize((ORIGINAL_WIDTH, height))))
    return out


TRANSFORMS = (
    None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270,
    Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE,
)  # fmt: skip


def setup(server: CommonsServer, count: int) -> list[int]:
    """Each POI its own files: one photo never wins for two POIs of a city, so POIs that
    shared files would be told apart by the shared-photo rule rather than ranked alike."""
    call_command("migrate", verbosity=0)
    city = City.objects.create(name="Benchville", latitude=38.7, longitude=-9.1)
    poi_list = PoiList.objects.create(title="All", city=city)
    pool = versions()
    ids = []
    for index in range(count):
        poi = PointOfInterest.objects.create(city=city, name=f"Sight {index}", category="see")
        poi_list.pois.add(poi)
        turn = TRANSFORMS[(index // 3) % len(TRANSFORMS)]
        files = []
        for k in range(CANDIDATES):
            label, image = pool[(index * 3 + k) % len(pool)]
            image = image.transpose(turn) if turn is not None else image
            files.append(server.add_file(f"{label} {index}.jpg", image))
        for file in files:  # render the stand-in's thumbnails once, outside the timing
            server.media_answer(file.thumb_path(500))
            server.media_answer(file.thumb_path(1280))
        server.set_results(poi.name, files)
        ids.append(poi.pk)
    return ids


def reset(ids: list[int]) -> None:
    for poi in PointOfInterest.objects.filter(pk__in=ids):
        poi.delete_image_file()
    Candidate.objects.all().delete()
    PoiRanking.objects.all().delete()


MODULES = {"features": scene_features, "match": scenes}


class SceneClock:
    """Seconds spent in scene_features.features and scenes.match, and calls, during a run."""

    def __init__(self) -> None:
        self.seconds = {"features": 0.0, "match": 0.0}
        self.calls = {"features": 0, "match": 0}

    def __enter__(self) -> SceneClock:
        self.real = {name: getattr(MODULES[name], name) for name in self.seconds}
        for name, function in self.real.items():
            setattr(MODULES[name], name, self._timed(name, function))
        return self

    def __exit__(self, *exc) -> None:
        for name, function in self.real.items():
            setattr(MODULES[name], name, function)

    def _timed(self, name, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1

        return timed


def timed_run(server: CommonsServer, ids: list[int]) -> tuple[float, RankingRun, int, dict]:
    server.requests.clear()
    start, cpu = time.perf_counter(), time.process_time()
    with SceneClock() as clock:
        run = start_run(scope="missing", poi_ids=ids, threshold=0.0, sync=True)
    seconds = time.perf_counter() - start
    used = {"cpu": time.process_time() - cpu, "clock": clock}
    return seconds, run, len(server.api_requests()), used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pois", type=int, default=30)
    parser.add_argument("--trials", type=int, default=2, help="best of N runs of each")
    args = parser.parse_args()
    server = CommonsServer().start()
    settings.WIKIMEDIA_API_URL = server.api_url
    settings.IMAGE_DOWNLOAD_ORIGINS = [server.origin]
    try:
        ids = setup(server, args.pois)
        real_get = scoring.get_scorer
        real_get().score([photo("coffee")])  # load the model outside the timing
        baseline_scorer = PerImageScorer(real_get())
        times: dict[str, list[float]] = {"pipeline": [], "baseline": []}
        api, used = {}, {}
        for _ in range(args.trials):  # alternate, so machine load hits both alike
            for label in ("pipeline", "baseline"):
                reset(ids)
                if label == "baseline":
                    scoring.get_scorer = lambda name=None: baseline_scorer
                try:
                    seconds, run, api[label], spent = timed_run(server, ids)
                finally:
                    scoring.get_scorer = real_get
                assert run.tally().updated == len(ids), run_summary(run)
                times[label].append(seconds)
                if label == "pipeline" and seconds <= min(times[label]):
                    used = spent | {"seconds": seconds}
        seconds, base_seconds = min(times["pipeline"]), min(times["baseline"])
        api, base_api = api["pipeline"], api["baseline"]
    finally:
        server.stop()

    n = len(ids)
    print(
        f"{n} POIs x {CANDIDATES} candidates, stand-in on 127.0.0.1, limiter off, "
        f"thumb {settings.IMAGE_RANKING_THUMB_WIDTH}px, "
        f"winner {settings.IMAGE_RANKING_WINNER_WIDTH}px, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"best of {args.trials} alternating runs each")
    print(f"{'':<34}{'POIs/s':>8}{'s/POI':>8}{'API req/POI':>13}")
    print(
        f"{'pipeline (one batch per POI)':<34}{n / seconds:>8.2f}"
        f"{seconds / n:>8.3f}{api / n:>13.2f}"
    )
    print(
        f"{'baseline (one model call/image)':<34}{n / base_seconds:>8.2f}"
        f"{base_seconds / n:>8.3f}{base_api / n:>13.2f}"
    )
    print(f"speed-up vs baseline: x{base_seconds / seconds:.2f}")
    print(
        f"original city_wiki: 11 API requests/POI -> {500 // 11} POIs/hour under 500 req/h; "
        f"this pipeline: {api / n:.0f} -> {int(500 / (api / n))} POIs/hour"
    )
    print(f"target >= 2 POIs/s: {'met' if n / seconds >= 2 else 'NOT met'}")
    clock = used["clock"]
    scene = sum(clock.seconds.values())
    pairs = max(1, clock.calls["match"])
    print(
        f"CPU per POI {1000 * used['cpu'] / n:.0f} ms (wall {1000 * used['seconds'] / n:.0f} ms); "
        f"same-scene test {1000 * scene / n:.0f} ms per POI = "
        f"{100 * scene / used['seconds']:.0f}% of the run: "
        f"features {1000 * clock.seconds['features'] / max(1, clock.calls['features']):.1f} ms "
        f"x {clock.calls['features'] / n:.0f} per POI, "
        f"match {1000 * clock.seconds['match'] / pairs:.2f} ms x {pairs / n:.0f} pairs per POI"
    )


def run_summary(run: RankingRun) -> str:
    t = run.tally()
    return f"processed {t.processed} updated {t.updated} flagged {t.flagged} failed {t.failed}"


if __name__ == "__main__":
    main()
