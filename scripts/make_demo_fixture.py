"""Build the in-repo demo data from the shared city exports, keeping facts only.

Descriptions, "about" texts and image paths are dropped (Wikivoyage text is CC BY-SA and the
image files are not ours); names, categories, coordinates, addresses and list membership stay.
Usage: python scripts/make_demo_fixture.py ../shared/data/city_exports/lisbon.json OUT.json
"""

from __future__ import annotations

import json
import sys

FACT_FIELDS = (
    "id",
    "district",
    "name",
    "category",
    "sub_category",
    "latitude",
    "longitude",
    "address",
    "rank",
    "osm_id",
)
EXTRA_POIS = 20  # POIs outside any list, so the demo shows list scoping at work


def facts(poi: dict) -> dict:
    row = {key: poi.get(key) for key in FACT_FIELDS}
    row.update(description="", phone="", website="", hours="", image_url=None)
    return row


def main(source: str, target: str) -> None:
    with open(source, encoding="utf-8") as handle:
        data = json.load(handle)
    in_lists = {p["id"] for pl in data["poi_lists"] for p in pl["pois"]}
    others = [p for p in data["points_of_interest"] if p["id"] not in in_lists][:EXTRA_POIS]
    pois = [p for p in data["points_of_interest"] if p["id"] in in_lists] + others
    city = data["city"]
    demo = {
        "city": {key: city.get(key) for key in ("name", "country", "latitude", "longitude")}
        | {"about": "", "wikivoyage_url": "", "image_url": None},
        "districts": data["districts"],
        "points_of_interest": [facts(p) for p in pois],
        "poi_lists": [
            {
                "title": pl["title"],
                "created_at": pl["created_at"],
                "updated_at": pl["updated_at"],
                "pois": [facts(p) for p in pl["pois"]],
            }
            for pl in data["poi_lists"]
        ],
    }
    with open(target, "w", encoding="utf-8") as out:
        json.dump(demo, out, ensure_ascii=False, indent=1)
        out.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
