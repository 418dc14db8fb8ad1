"""Serve a Commons stand-in on 127.0.0.1 with real photos for the demo POIs (offline demo).

Commons itself is not reachable from every machine (nor from CI); this lets a newcomer see the
whole loop (rank, review, label, "use this image") with real photos of different quality:
    .venv/bin/python scripts/demo_commons.py            # terminal 1 (or: make demo-commons)
    WIKIMEDIA_API_URL=http://127.0.0.1:8765/w/api.php \\
    IMAGE_DOWNLOAD_ORIGINS=http://127.0.0.1:8765 make run   # terminal 2
Each listed demo POI gets a sharp photo, its dark/blurred/badly cropped copies, a second
photo and, for some, one taken far away; every seventh POI has no hits (a flag to review).
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


def populate(server: CommonsServer) -> int:
    pois = listed_pois()
    for index, poi in enumerate(pois):
        if index % 7 == 6:
            continue  # no hits: the POI is flagged for review
        name = poi["name"]
        main = photo(PHOTO_NAMES[index % len(PHOTO_NAMES)])
        other = photo(PHOTO_NAMES[(index + 3) % len(PHOTO_NAMES)])
        here = (poi["latitude"], poi["longitude"]) if poi.get("latitude") else None
        files = [server.add_file(f"{name} - view.jpg", main, coords=here)]
        for kind in ("blur", "dark", "crop"):
            files.append(server.add_file(f"{name} - {kind}.jpg", degrade(main, kind), coords=here))
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
