"""The same-scene test, before and after, on every real photo the packages ship.

Before: the crop search that scoring/scenes.py replaced (bench/baseline_copies.py: a multi-scale
NCC search, and a 64-bit difference hash within 10 bits for the same framing). After:
scenes.match (ORB keypoints under a RANSAC similarity, checked for a copy's scale, turn,
position, inlier count, share and spread; a two-band whole-frame correlation for blurred copies).

For each photo (tests/scoring/scene_set.py: scikit-image, scikit-learn, PyWavelets, matplotlib
and the NIMA test images), copies made here: crops from 90% down to 25% of the frame, turned by
0, 3, 6 and 10 degrees either way and enlarged back to full size; dark, dim, washed-out, hazy and
blurred versions; a re-encoded copy resized to 70%. Reported for both methods:
  copies found     the copy matched to its original (after: with the right crop share within
                   10% and turn within 2 degrees; before: found at all, it reports no turn)
  originals win    the damage ranking (quality.assess_copies + ranking_scores, real NIMA scores)
                   puts the original above its copy, for every copy NIMA alone would rank
                   above it or not (resized copies are not damage: shown apart)
  false matches    over every pair of different photos, and every copy of one photo against
                   every other photo; the stereo pair (one place from a step aside) shown apart
  time             per pair (features computed once before), per POI of ten (features of ten
                   images and their 45 pairs)

Run: .venv/bin/python bench/scenes.py   (needs `python manage.py install_scoring_model`)
"""

from __future__ import annotations

import os
import sys
import time
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "city_wiki.settings")

import django  # noqa: E402

django.setup()

import baseline_copies  # noqa: E402
import numpy as np  # noqa: E402

from image_ranking.scoring import get_scorer, quality, scene_features, scenes  # noqa: E402
from tests.scoring.scene_set import STEP_ASIDE, copies, original, photo_names, version  # noqa: E402


class Before:
    """The old test behind scenes' interface, so quality judges its matches the same way."""

    name = "before (NCC search + dhash)"

    @staticmethod
    def features(image):
        return baseline_copies.view(image.convert("L"))

    @staticmethod
    def match(a, b) -> scenes.SceneMatch | None:
        for inner, (small, large) in enumerate(((a, b), (b, a))):
            region = baseline_copies.locate(large, small)
            if region is not None:
                ow, oh = large.size
                transform = np.array(
                    [[region.width, 0, region.left], [0, region.width, region.top * oh / ow]]
                )
                box = (region.left, region.top, region.width, region.height)
                return scenes.SceneMatch(
                    inner, transform, region.width, 0.0, 0, box, region.full_frame
                )
        return None


class After:
    name = "after (scenes.match)"
    features = staticmethod(scene_features.features)
    match = staticmethod(scenes.match)


METHODS = (Before, After)


def group(label: str) -> str:
    return label.split(" turn")[0] if label.startswith("crop") else label


def found_right(method, m, truth: dict) -> bool:
    if m is None:
        return False
    if method is Before:
        return True
    share = m.share if m.inner == 0 else 1 / m.share
    turn = m.turn if m.inner == 0 else -m.turn
    right_way = m.inner == 0 or m.full_frame
    want = truth.get("share", 1.0)
    return right_way and abs(share / want - 1) < 0.1 and abs(turn - truth.get("turn", 0.0)) < 2


def main() -> None:
    started = time.perf_counter()
    names = photo_names()
    shots = {n: copies(n) for n in names}
    labels = list(shots[names[0]])
    groups = list(dict.fromkeys(group(k) for k in labels))
    print(f"{len(names)} real photos, {len(labels)} copies each: {', '.join(names)}")
    scorer = get_scorer("nima")
    score = {n: scorer.score([version(n)])[0].score for n in names}
    copy_score = {
        n: dict(
            zip(
                labels,
                (r.score for r in scorer.score([shots[n][k][0] for k in labels])),
                strict=True,
            )
        )
        for n in names
    }
    widths = {n: original(n).width for n in names}
    results = {}
    for method in METHODS:
        feats = {n: method.features(version(n)) for n in names}
        copy_feats = {n: {k: method.features(shots[n][k][0]) for k in labels} for n in names}
        found = {g: [0, 0] for g in groups}
        wins = {g: [0, 0] for g in groups}
        nima_losses = dict.fromkeys(groups, 0)
        for n in names:
            for k in labels:
                image, truth = shots[n][k]
                g = group(k)
                found[g][1] += 1
                found[g][0] += found_right(method, method.match(copy_feats[n][k], feats[n]), truth)
                # the damage ranking of the pair, with real NIMA scores
                # every copy's file has the original's size, but the resized one
                file_width = round(0.7 * widths[n]) if k == "resized" else widths[n]
                damages = with_method(
                    method,
                    [version(n), image],
                    [feats[n], copy_feats[n][k]],
                    [widths[n], file_width] if method is After else None,
                )
                ranked = quality.ranking_scores([score[n], copy_score[n][k]], damages)
                wins[g][1] += 1
                wins[g][0] += ranked[0] > ranked[1]
                nima_losses[g] += copy_score[n][k] > score[n]
        false, aside, false_pairs = 0, 0, []
        pairs = 0
        for a, b in combinations(names, 2):
            hit = method.match(feats[a], feats[b]) is not None
            pairs += 1
            if STEP_ASIDE.get(a) == b or STEP_ASIDE.get(b) == a:
                aside += hit
                continue
            false += hit
            if hit:
                false_pairs.append((a, b))
        copy_false, copy_pairs, copy_aside = 0, 0, 0
        for a in names:
            for b in names:
                if a == b:
                    continue
                for k in labels:
                    hit = method.match(copy_feats[b][k], feats[a]) is not None
                    if STEP_ASIDE.get(a) == b or STEP_ASIDE.get(b) == a:
                        copy_aside += hit
                        continue
                    copy_pairs += 1
                    copy_false += hit
                    if hit and len(false_pairs) < 12:
                        false_pairs.append((a, f"{b} {k}"))
        results[method] = {
            "found": found,
            "wins": wins,
            "nima": nima_losses,
            "false": (false, pairs - 1),
            "copy_false": (copy_false, copy_pairs),
            "aside": (aside, copy_aside),
            "false_pairs": false_pairs,
            **timing(method, names, shots),
        }
    report(results, groups, len(names))
    print(f"\nbench time {time.perf_counter() - started:.0f} s")


def with_method(method, images, features, file_widths):
    """quality.assess_copies with `method`'s test in place of scenes.match."""
    real = scenes.match
    scenes.match = method.match
    try:
        return quality.assess_copies(images, features=features, file_widths=file_widths)
    finally:
        scenes.match = real


def fraction(pair) -> str:
    return f"{pair[0]}/{pair[1]}"


def timing(method, names, shots) -> dict:
    """ms per pair (features given) and per POI of ten (features + 45 pairs)."""
    pois = []
    for index in range(0, len(names) - 6, 3):
        n = names[index]
        others = [version(m) for m in names[index + 1 : index + 7]]
        picks = [shots[n][k][0] for k in ("dark", "crop 0.50 turn -6", "crop 0.25 turn +3")]
        pois.append([version(n), *picks, *others])
    pair_seconds = poi_seconds = 0.0
    pairs = 0
    for images in pois:
        start = time.perf_counter()
        feats = [method.features(i) for i in images]
        mid = time.perf_counter()
        for a, b in combinations(feats, 2):
            method.match(a, b)
            pairs += 1
        end = time.perf_counter()
        pair_seconds += end - mid
        poi_seconds += end - start
    return {"ms/pair": 1000 * pair_seconds / pairs, "ms/POI": 1000 * poi_seconds / len(pois)}


def report(results: dict, groups: list[str], n: int) -> None:
    print(f"\n{'copies found':<26}" + "".join(f"{m.name:>30}" for m in METHODS))
    for g in groups:
        cells = "".join(f"{fraction(results[m]['found'][g]):>30}" for m in METHODS)
        print(f"{g:<26}{cells}")
    total = {m: [sum(v[i] for v in results[m]["found"].values()) for i in (0, 1)] for m in METHODS}
    print(f"{'all copies':<26}" + "".join(f"{fraction(total[m]):>30}" for m in METHODS))
    print(f"\n{'original ranks above copy':<26}" + "".join(f"{m.name:>30}" for m in METHODS))
    for g in groups:
        nima = results[After]["nima"][g]
        cells = "".join(f"{fraction(results[m]['wins'][g]):>30}" for m in METHODS)
        print(f"{g:<26}{cells}   (NIMA alone prefers the copy {nima}x)")
    wins = {
        m: [sum(v[i] for g, v in results[m]["wins"].items() if g != "resized") for i in (0, 1)]
        for m in METHODS
    }
    print(f"{'all damaged copies':<26}" + "".join(f"{fraction(wins[m]):>30}" for m in METHODS))
    print(f"\n{'false matches':<26}" + "".join(f"{m.name:>30}" for m in METHODS))
    for key, title in (("false", "photo vs photo"), ("copy_false", "copy vs other photo")):
        print(f"{title:<26}" + "".join(f"{fraction(results[m][key]):>30}" for m in METHODS))
    print(
        f"{'stereo pair (step aside)':<26}"
        + "".join(f"{'{} + {} copies'.format(*results[m]['aside']):>30}" for m in METHODS)
    )
    for m in METHODS:
        if results[m]["false_pairs"]:
            print(f"  {m.name}: {results[m]['false_pairs'][:12]}")
    print(f"\n{'time':<26}" + "".join(f"{m.name:>30}" for m in METHODS))
    for key in ("ms/pair", "ms/POI"):
        print(f"{key:<26}" + "".join(f"{results[m][key]:>30.1f}" for m in METHODS))
    before, after = results[Before]["ms/POI"], results[After]["ms/POI"]
    print(f"ratio after/before per POI: {after / before:.2f}")


if __name__ == "__main__":
    main()
