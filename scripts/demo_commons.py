"""Serve a Commons stand-in on 127.0.0.1 with real photos for the demo POIs (offline demo).

Commons itself is not reachable from every machine (nor from CI); this lets a newcomer see the
whole loop (rank, review, label, "use this image") with real photos of different quality:
    .venv/bin/python scripts/demo_commons.py            # terminal 1 (or: make demo-commons)
    WIKIMEDIA_API_URL=http://127.0.0.1:8765/w/api.php \\
    IMAGE_DOWNLOAD_ORIGINS=http://127.0.0.1:8765 make run   # terminal 2
Each listed demo POI gets a sharp photo of its own (in a category named after the POI), its
dark/blurred/badly cropped copies, a second photo and, for some, one taken far away; every
seventh POI has no hits (a flag to review).
The photos are scikit-image's bundled samples, so a POI's "photo" is not of that place.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from PIL import Image  # noqa: E402

from tests.fakes.commons_server import CommonsServer  # noqa: E402
from tests.fakes.images import PHOTO_NAMES, degrade, photo  # noqa: E402

DEMO_EXPORTS = sorted((REPO_ROOT / "cities" / "fixtures" / "demo").glob("*.json"))
FAR_AWAY = (0.0, 0.0)  # Null Island: far from every demo POI, so the relevance guard shows


def listed_pois() -> list[dict]:
    seen: dict[int, dict] = {}
    for path in DEMO_EXPORTS:
        data = json.loads(path.read_text(encoding="utf-8"))
        for poi_list in data["poi_lists"]:
            for poi in poi_list["pois"]:
                seen.setdefault(poi["id"], poi)
    return list(seen.values())


TURNS = (
    None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270,
    Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE,
)  # fmt: skip


ZOOMS = (None, (2, 2, 8, 8), (0, 0, 7, 7), (3, 3, 10, 10))  # tenths of the photo kept


def own_scene(index: int) -> Image.Image:
    """A scene of this POI's own (a sample photo turned, mirrored or zoomed in): the pipeline
    never lets one photo win for two POIs of a city, so they must not share one."""
    image = photo(PHOTO_NAMES[index % len(PHOTO_NAMES)])
    variant = index // len(PHOTO_NAMES)
    w, h = image.size
    zoom = (variant // len(TURNS)) % len(ZOOMS)
    if ZOOMS[zoom] is not None:
        left, top, right, bottom = ZOOMS[zoom]
        image = image.crop((w * left // 10, h * top // 10, w * right // 10, h * bottom // 10))
    turn = TURNS[variant % len(TURNS)]
    return image.transpose(turn) if turn is not None else image


def populate(server: CommonsServer) -> int:
    pois = listed_pois()
    for index, poi in enumerate(pois):
        if index % 7 == 6:
            continue  # no hits: the POI is flagged for review
        name = poi["name"]
        main = own_scene(index)
        other = own_scene(index + len(pois))
        here = (poi["latitude"], poi["longitude"]) if poi.get("latitude") else None
        named = {"coords": here, "categories": [name]}  # as Commons files of a place are
        files = [server.add_file(f"{name} - view.jpg", main, **named)]
        for kind in ("blur", "dark", "crop"):
            files.append(server.add_file(f"{name} - {kind}.jpg", degrade(main, kind), **named))
        files.append(server.add_file(f"{name} - detail.jpg", other, coords=here))
        if index % 5 == 0:
            files.insert(0, server.add_file(f"{name} (elsewhere).jpg", other, coords=FAR_AWAY))
        server.set_results(name, files)
    return len(pois)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    server = CommonsServer().start(port=args.port)
    count = populate(server)
    print(f"Commons stand-in for {count} demo POIs at {server.api_url}")
    print(f"  WIKIMEDIA_API_URL={server.api_url} IMAGE_DOWNLOAD_ORIGINS={server.origin} make run")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
