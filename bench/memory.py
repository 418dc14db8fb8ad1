"""Worker peak memory with hostile but legal inputs, each against a baseline side by side.

Cases (one POI each, ranked by `rank_poi` against the Commons stand-in, limiter off):
- `jpeg`, `png`, `webp`, `gif`: ten 7000x7000 "thumbnails" (under the 8 MiB thumbnail cap
  and the 50 MP pixel cap) that Commons describes as 400 px wide, so the pipeline fetches
  them as they are: the JPEGs are a real photo enlarged (about 1.2 MB each), the others
  `tests.fakes.commons_server.oversized_image` (a photo enlarged in blocks: 270-300 KB as PNG
  or WebP, 4.6 MB as GIF).
- `gzip-300mb`, `gzip-1gib`: the one search answer is a gzip bomb (`gzip_bomb`): valid JSON
  padded to 300 MB (a 291 KB body, the issue's probe) or 1 GiB (a 1.0 MB body: deflate packs
  at most about 1,030:1).

Each measurement runs in a fresh process and reports its peak RSS (the model and Django are
loaded first in both columns). The baseline is the old behaviour, switched back on in that
process: for JPEG, decoding at full size (no reduced-scale decoding, no shrinking before the
batch); for PNG, WebP and GIF, decoding at full size then shrinking (no refusal from the
header); for the gzip answers, the body read whole (`response.content`, as `response.json()`
did) before parsing.

Run: .venv/bin/python bench/memory.py [CASE ...]     (target: every bounded worker < 400 MB)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIDE = 7000
CANDIDATES = 10
THUMBNAIL_CASES = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}
GZIP_CASES = {"gzip-300mb": 300_000_000, "gzip-1gib": 1 << 30}
CASES = [*THUMBNAIL_CASES, *GZIP_CASES]


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not `ru_maxrss`: after fork+exec that starts from the
    parent's peak, so the parent making 7000x7000 inputs would show in every child."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def hostile_jpeg(seed: int) -> bytes:
    """A 7000x7000 photo-like JPEG: a real photo enlarged (smooth, so it compresses well)."""
    from PIL import Image

    from tests.fakes.images import PHOTO_NAMES, encode, photo

    image = photo(PHOTO_NAMES[seed % len(PHOTO_NAMES)]).rotate(seed * 5)
    return encode(image.resize((SIDE, SIDE), Image.BILINEAR), "JPEG", quality=40)


def make_thumbnails(case: str, folder: Path) -> None:
    from tests.fakes.commons_server import oversized_image

    folder.mkdir(parents=True, exist_ok=True)
    fmt = THUMBNAIL_CASES[case]
    for i in range(CANDIDATES):
        data = hostile_jpeg(i) if fmt == "JPEG" else oversized_image(fmt, SIDE, seed=i)
        (folder / f"{i:02d}.{fmt.lower()}").write_bytes(data)


def switch_to_baseline(case: str) -> None:
    """Put the old behaviour back in this process (see the module docstring)."""
    import image_ranking.commons.client as client
    import image_ranking.pipeline.candidates as candidates
    import image_ranking.scoring.imaging as imaging

    real_open = imaging.open_image
    if case == "jpeg":

        def open_full(data, *, max_pixels=imaging.DEFAULT_MAX_PIXELS, **_ignored):
            return real_open(data, max_pixels=max_pixels)

        candidates.open_image = open_full
        candidates._within = lambda image, side: image
    elif case in THUMBNAIL_CASES:

        def open_unrefused(data, *, max_pixels=imaging.DEFAULT_MAX_PIXELS, at_most=None, **_):
            return real_open(data, max_pixels=max_pixels, at_most=at_most, refuse_oversized=False)

        candidates.open_image = open_unrefused
    else:
        client.CommonsClient._body = lambda self, response, deadline, backoff: response.content


def child(case: str, folder: Path, baseline: bool) -> None:
    """One measurement, in this (fresh) process; the inputs were made by the parent (or are
    made before the first figure), so making them does not count."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from offline_django import setup

    setup("bench-memory-")
    from django.conf import settings
    from django.core.management import call_command

    from cities.models import City, PoiList, PointOfInterest
    from image_ranking.pipeline.ranking import rank_poi
    from image_ranking.scoring import get_scorer
    from tests.fakes.commons_server import CommonsServer, gzip_bomb

    call_command("migrate", verbosity=0)
    get_scorer("nima")  # the model is loaded in every worker anyway: not what we measure
    if baseline:
        switch_to_baseline(case)
    server = CommonsServer().start()
    settings.WIKIMEDIA_API_URL = server.api_url
    settings.IMAGE_DOWNLOAD_ORIGINS = [server.origin]
    city = City.objects.create(name="Lisbon")
    poi = PointOfInterest.objects.create(city=city, name="Hostile", category="see")
    PoiList.objects.create(title="L", city=city).pois.add(poi)
    if case in GZIP_CASES:
        body = len(gzip_bomb(GZIP_CASES[case]))  # made (and cached) before the first figure
        server.fail_next("gzip_bomb", query="Hostile", size=GZIP_CASES[case])
        sizes = [body]
    else:
        files = [
            server.add_file(f"H{i}.{path.suffix}", path.read_bytes(), width=400, height=400)
            for i, path in enumerate(sorted(folder.iterdir()))
        ]
        server.set_results("Hostile", files)
        sizes = [len(f.data) for f in files]
    before = peak_rss_mb()
    outcome = rank_poi(poi.pk, threshold=0).outcome
    peak = peak_rss_mb()
    server.stop()
    result = {
        "outcome": str(outcome),
        "peak_mb": round(peak, 1),
        "before_mb": round(before, 1),
        "input_kb": round(sum(sizes) / len(sizes) / 1024),
    }
    print(json.dumps(result))


def measure(case: str, folder: Path, baseline: bool) -> dict:
    args = [sys.executable, __file__, "--child", case, str(folder)]
    args += ["--baseline"] if baseline else []
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{case} ({'baseline' if baseline else 'bounded'}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    sys.path.insert(0, str(ROOT))
    if "--child" in sys.argv:
        at = sys.argv.index("--child")
        child(sys.argv[at + 1], Path(sys.argv[at + 2]), "--baseline" in sys.argv)
        return
    cases = [a for a in sys.argv[1:] if a in CASES] or CASES
    work = Path(tempfile.mkdtemp(prefix="bench-memory-inputs-"))
    print(f"{'case':12}{'input':>10}{'bounded MB':>12}{'baseline MB':>13}{'ratio':>8}"
          f"{'before MB':>11}   outcome (bounded / baseline)")  # fmt: skip
    for case in cases:
        folder = work / case
        if case in THUMBNAIL_CASES:
            make_thumbnails(case, folder)
        ours, base = measure(case, folder, False), measure(case, folder, True)
        size = f"{ours['input_kb']} KB"
        print(
            f"{case:12}{size:>10}{ours['peak_mb']:>12.0f}{base['peak_mb']:>13.0f}"
            f"{base['peak_mb'] / ours['peak_mb']:>7.1f}x{ours['before_mb']:>11.0f}"
            f"   {ours['outcome']} / {base['outcome']}"
        )
    print(f"thumbnail cases: {CANDIDATES} of {SIDE}x{SIDE} px, input = the mean file size")
    print("target: bounded worker peak RSS < 400 MB")


if __name__ == "__main__":
    main()
