"""Worker peak memory with hostile but legal thumbnails, with a baseline side by side.

One POI has ten candidates whose "thumbnails" are 7000x7000 JPEGs of about a megabyte each
(under the 8 MiB thumbnail cap and the 50 MP pixel cap): Commons describes them as 400 px
wide, so the pipeline fetches them as they are. Each measurement runs in a fresh process
(`rank_poi` on that POI against the Commons stand-in, limiter off) and reports the process's
peak RSS. The baseline is the same process with the reduced-scale decoding switched off
(every thumbnail decoded at full size, as before), so the ratio shows what it saves.

Run: .venv/bin/python bench/memory.py     (target: the worker stays under 400 MB)
"""

from __future__ import annotations

import io
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIDE = 7000
CANDIDATES = 10


def hostile_jpeg(seed: int) -> bytes:
    """A 7000x7000 photo-like JPEG: a real photo enlarged (smooth, so it compresses well)."""
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from tests.fakes.images import PHOTO_NAMES, photo

    image = photo(PHOTO_NAMES[seed % len(PHOTO_NAMES)]).resize((SIDE, SIDE), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=40)
    return buffer.getvalue()


def child(full_decode: bool, thumbs: Path) -> None:
    """One measurement, in this (fresh) process; the thumbnails were made by the parent, so
    making them does not count."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from offline_django import setup

    setup("bench-memory-")
    from django.conf import settings
    from django.core.management import call_command

    from cities.models import City, PoiList, PointOfInterest
    from image_ranking.pipeline.ranking import rank_poi
    from image_ranking.scoring import get_scorer
    from tests.fakes.commons_server import CommonsServer

    call_command("migrate", verbosity=0)
    get_scorer("nima")  # the model is loaded in every worker anyway: not what we measure
    if full_decode:
        import image_ranking.pipeline.ranking as ranking
        import image_ranking.scoring.imaging as imaging

        real_open = imaging.open_image

        def open_full(data, *, max_pixels=imaging.DEFAULT_MAX_PIXELS, at_most=None):
            return real_open(data, max_pixels=max_pixels)

        imaging.open_image = open_full
        ranking._within = lambda image, side: image
    server = CommonsServer().start()
    settings.WIKIMEDIA_API_URL = server.api_url
    settings.IMAGE_DOWNLOAD_ORIGINS = [server.origin]
    city = City.objects.create(name="Lisbon")
    poi = PointOfInterest.objects.create(city=city, name="Hostile", category="see")
    PoiList.objects.create(title="L", city=city).pois.add(poi)
    files = [
        server.add_file(f"H{i}.jpg", path.read_bytes(), width=400, height=400)
        for i, path in enumerate(sorted(thumbs.glob("*.jpg")))
    ]
    server.set_results("Hostile", files)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    outcome = rank_poi(poi.pk, threshold=0).outcome
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    server.stop()
    sizes = [len(f.data) for f in files]
    print(
        json.dumps(
            {
                "outcome": str(outcome),
                "peak_mb": round(peak, 1),
                "before_mb": round(before, 1),
                "thumb_kb": round(sum(sizes) / len(sizes) / 1024),
            }
        )
    )


def measure(full_decode: bool, thumbs: Path) -> dict:
    args = [sys.executable, __file__, "--child", str(thumbs)]
    args += ["--full-decode"] if full_decode else []
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if "--child" in sys.argv:
        child("--full-decode" in sys.argv, Path(sys.argv[sys.argv.index("--child") + 1]))
        return
    thumbs = Path(tempfile.mkdtemp(prefix="bench-memory-thumbs-"))
    for i in range(CANDIDATES):
        (thumbs / f"{i:02d}.jpg").write_bytes(hostile_jpeg(i))
    ours, base = measure(False, thumbs), measure(True, thumbs)
    print(f"{CANDIDATES} thumbnails of {SIDE}x{SIDE} px, ~{ours['thumb_kb']} KB each")
    print(f"{'':28}{'reduced decode':>16}{'full decode (baseline)':>26}{'ratio':>8}")
    print(
        f"{'worker peak RSS (MB)':28}{ours['peak_mb']:>16.0f}{base['peak_mb']:>26.0f}"
        f"{base['peak_mb'] / ours['peak_mb']:>7.1f}x"
    )
    print(f"{'RSS before the POI (MB)':28}{ours['before_mb']:>16.0f}{base['before_mb']:>26.0f}")
    print(f"{'outcome':28}{ours['outcome']:>16}{base['outcome']:>26}")
    print("target: worker peak RSS < 400 MB")


if __name__ == "__main__":
    main()
