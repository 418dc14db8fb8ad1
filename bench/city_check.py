"""One photo, one place, city-wide: what a new photo's check against every stored photo of a
city costs, before and after, and whether a cheap fingerprint could pre-select the pairs.

Features come from the real photos of tests/scoring/scene_set.py and their copies (crops 90%
to 25% turned up to 10 degrees either way, dark, dim, washed-out, hazy, blurred, re-encoded and
resized). A city of N stored photos is N of those versions; a new photo is checked against all
of them as shared_photos.conflict does when nothing conflicts (its worst case): the stored
bytes parsed, then scenes.match.
  before   scenes.match with cv2.batchDistance as its nearest-descriptor search
  after    scenes.match as it is (faiss's exhaustive binary search: the same distances)
Both give the same answer on every pair (counted here, over every pair below).

Pre-selection: an LSH key by bit sampling of the ORB descriptors (for each of `tables` tables,
`bits` sampled bits of every descriptor, as a set of short keys) and the count of keys a crop
side (coarse set) shares with the other photo's fine set, either way. Reported: the lowest
count among the pairs match accepts (every copy against its original, same-framing matches
apart: a tiny-frame test would take those), and at that threshold, the share of pairs of
different photos it passes. A pre-selection that never loses a copy must pass that share.

Run: .venv/bin/python bench/city_check.py [--cities 100 500] [--new 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from image_ranking.scoring import scene_features, scenes  # noqa: E402
from tests.scoring.scene_set import copies, photo_names, version  # noqa: E402

LSH = ((1, 20), (2, 20), (4, 24), (8, 28))  # (tables, bits)


def batch_distance(queries: np.ndarray, train: np.ndarray):
    return cv2.batchDistance(queries, train, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=2)


def match_before(a, b):
    real = scenes.two_nearest
    scenes.two_nearest = batch_distance
    try:
        return scenes.match(a, b)
    finally:
        scenes.two_nearest = real


def lsh(descriptors: np.ndarray, tables: int, bits: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    weights = 1 << np.arange(bits, dtype=np.int64)
    unpacked = np.unpackbits(descriptors, axis=1)
    keys = []
    for table in range(tables):
        sampled = unpacked[:, rng.choice(256, bits, replace=False)].astype(np.int64)
        keys.append(np.unique(sampled @ weights + (table << bits)))
    return np.concatenate(keys)


def shared_keys(a: tuple, b: tuple) -> int:
    (fine_a, coarse_a), (fine_b, coarse_b) = a, b
    return max(len(np.intersect1d(coarse_a, fine_b)), len(np.intersect1d(coarse_b, fine_a)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cities", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--new", type=int, default=5, help="new photos checked per city")
    args = parser.parse_args()
    names = photo_names()
    started = time.perf_counter()
    stored = {}  # (photo, version) -> bytes, as PoiRanking.image_scene holds them
    for n in names:
        stored[(n, "original")] = scene_features.features(version(n)).to_bytes()
        for label, (image, _) in copies(n).items():
            stored[(n, label)] = scene_features.features(image).to_bytes()
    feats = {k: scene_features.Features.from_bytes(v) for k, v in stored.items()}
    print(
        f"{len(names)} photos, {len(stored)} versions, "
        f"features {time.perf_counter() - started:.0f} s"
    )

    # Every copy against its original (what match must find), every version against every
    # other photo's original (what it must not).
    same = [((n, "original"), k) for k in stored for n in [k[0]] if k[1] != "original"]
    different = [((a, "original"), k) for a in names for k in stored if k[0] != a]
    verdicts, disagree = {}, 0
    for a, b in same + different:
        after = scenes.match(feats[a], feats[b])
        disagree += (after is None) != (match_before(feats[a], feats[b]) is None)
        verdicts[(a, b)] = after is not None
    accepted = [p for p in same if verdicts[p]]
    framing = {p for p in accepted if scenes._same_framing(feats[p[0]], feats[p[1]])}
    print(
        f"match accepts {len(accepted)}/{len(same)} copies and "
        f"{sum(verdicts[p] for p in different)}/{len(different)} pairs of different photos; "
        f"before and after disagree on {disagree} of {len(verdicts)} pairs"
    )

    print(f"\n{'LSH key (tables x bits)':<26}{'lowest count':>14}{'different passed':>18}"
          f"{'key bytes':>11}{'us/pair':>9}")  # fmt: skip
    crop_pairs = [p for p in accepted if p not in framing]
    for tables, bits in LSH:
        keys = {
            k: (lsh(f.fine.descriptors, tables, bits), lsh(f.coarse.descriptors, tables, bits))
            for k, f in feats.items()
        }
        lowest = min(shared_keys(keys[a], keys[b]) for a, b in crop_pairs)
        start = time.perf_counter()
        counts = [shared_keys(keys[a], keys[b]) for a, b in different]
        us = 1e6 * (time.perf_counter() - start) / len(different)
        passed = np.mean(np.array(counts) >= lowest)
        size = np.mean([sum(map(len, v)) for v in keys.values()]) * ((bits + 7) // 8 + 1)
        print(f"{f'{tables} x {bits}':<26}{lowest:>14}{passed:>17.1%}{size:>11.0f}{us:>9.0f}")

    print(f"\n{'city check (ms)':<26}{'before':>10}{'after':>10}{'ratio':>8}")
    rng = np.random.default_rng(1)
    keys = list(stored)
    for n in args.cities:
        checks = []  # (new photo, the city's stored photos): the same for both methods
        for i in rng.choice(len(keys), args.new, replace=False):
            city = [k for k in keys if k[0] != keys[i][0]]
            checks.append((keys[i], [city[j] for j in rng.choice(len(city), n, replace=True)]))
        seconds = {}
        for method, test in (("before", match_before), ("after", scenes.match)):
            start = time.perf_counter()
            for new, city in checks:
                mine = scene_features.Features.from_bytes(stored[new])
                for other in city:
                    test(mine, scene_features.Features.from_bytes(stored[other]))
            seconds[method] = (time.perf_counter() - start) / args.new
        before, after = 1000 * seconds["before"], 1000 * seconds["after"]
        print(f"{f'N = {n}':<26}{before:>10.0f}{after:>10.0f}{after / before:>8.2f}")
        print(f"{'  per pair':<26}{before / n:>10.2f}{after / n:>10.2f}{after / before:>8.2f}")
    print(f"\nbench time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
