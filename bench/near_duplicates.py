"""Does the original beat its damaged copies, and is a sharp photo ever called damaged?

NIMA alone, today's blur check (hash_baseline.blurred_copies) and the technical-quality check
(quality.assess_copies), adding its parts one at a time, on real photos (scikit-image's samples
and ../shared/data/nima_test_images when present) thumbnailed as Commons serves them (500 px
JPEG) and scored by the real NIMA model. POIs:
  same scene    a photo and its damaged copies (dark, dim, washed, haze, blur, crop)
  mixed scenes  the same plus two different photos of the set (any undamaged photo may win)
  other views   different photos of one scene: a stereo pair and full-resolution close-ups
                (nothing there is damaged; any mark is wrong)
Reported per method: how often the original beats each kind of copy, how often it or (mixed)
any undamaged photo wins, how many undamaged photos are wrongly marked, the time per pair, how
many damaged copies are caught, and the margin: the original's ranking score minus the best
copy's, at worst (negative: a copy beats it).

Run: .venv/bin/python bench/near_duplicates.py   (needs `python manage.py install_scoring_model`)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "city_wiki.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")  # a development tool

import django  # noqa: E402

django.setup()

from PIL import Image  # noqa: E402

from image_ranking.scoring import get_scorer, quality  # noqa: E402
from tests.scoring import hash_baseline  # noqa: E402
from tests.scoring.quality_set import (  # noqa: E402
    DAMAGES,
    original,
    other_views,
    photo_names,
    thumbnail,
    version,
)

# Bench-only copies beside the test set's: other enlarged crops (the centre half, the
# bottom-right third), which NIMA likes more than a top-left corner.
EXTRA = ("crop-centre", "crop-br")
KINDS = (*DAMAGES, *EXTRA)


def extra(name: str, kind: str) -> Image.Image:
    image = original(name)
    w, h = image.size
    box = (
        (w // 4, h // 4, 3 * w // 4, 3 * h // 4)
        if kind == "crop-centre"
        else (2 * w // 3, 2 * h // 3, w, h)
    )
    return thumbnail(image.crop(box).resize((w, h), Image.Resampling.BICUBIC))


# The new method built up one part at a time: each row adds the part it names.
STEPS = (
    ("+sharpness", {"sharpness"}),
    ("+exposure", {"sharpness", "exposure"}),
    ("+contrast", {"sharpness", "exposure", "contrast"}),
    ("+crop detection", {"sharpness", "exposure", "contrast", "crops"}),
    ("+resolution", set(quality.PARTS)),
)
METHODS = ("nima", "blur check", *(name for name, _ in STEPS))


def marks(method: str, images: list) -> list[bool]:
    """Which candidates the method penalises."""
    if method == "nima":
        return [False] * len(images)
    if method == "blur check":
        return [c is not None for c in hash_baseline.blurred_copies(images)]
    parts = frozenset(dict(STEPS)[method])
    return [d is not None for d in quality.assess_copies(images, parts)]


def ranked(scores: list[float], flags: list[bool]) -> list[float]:
    return [s - quality.PENALTY if f else s for s, f in zip(scores, flags, strict=True)]


def main() -> None:
    started = time.perf_counter()
    scorer = get_scorer("nima")
    names = photo_names()
    shots = {n: {k: version(n, k) for k in ("original", *DAMAGES)} for n in names}
    for n in names:
        shots[n] |= {k: extra(n, k) for k in EXTRA}
    scores = {}
    for n in names:
        results = scorer.score(list(shots[n].values()))
        scores[n] = dict(zip(shots[n], (r.score for r in results), strict=True))
    views = other_views()
    view_scores = {k: [r.score for r in scorer.score(v)] for k, v in views.items()}
    print(f"{len(names)} real photos at 500 px: {', '.join(names)}")
    print(
        "NIMA: how often a copy scores above its original (before any check): "
        + ", ".join(
            f"{k} {sum(scores[n][k] > scores[n]['original'] for n in names)}" for k in KINDS
        )
    )
    header = (
        f"{'method':<16}"
        + "".join(f"{'beats ' + k:>12}" for k in KINDS)
        + f"{'orig wins':>11}{'good wins':>11}{'sharp marked':>14}{'ms/pair':>9}"
        + f"{'caught':>8}{'margin':>8}"
    )
    rows = {}
    for mixed in (False, True):
        print(
            f"\n=== {'mixed scenes (+2 other photos)' if mixed else 'same scene'}: "
            f"{len(names)} POIs x (original, {', '.join(KINDS)})"
        )
        print(header)
        for method in METHODS:
            rows[mixed, method] = row(method, names, shots, scores, mixed, views, view_scores)
            print(format_row(method, rows[mixed, method]))
    print("\nBefore/after (mixed scenes): today's blur check -> technical-quality check")
    before, after = rows[True, "blur check"], rows[True, "+resolution"]
    n = len(names)
    for key in ("orig wins", "good wins"):
        print(f"  {key:<13} {before[key]}/{n} -> {after[key]}/{n}")
    for kind in KINDS:
        print(f"  beats {kind:<7} {before[kind]}/{n} -> {after[kind]}/{n}")
    print(
        f"  sharp marked  {before['sharp marked']} -> {after['sharp marked']}"
        f" (of {before['sharp total']} undamaged photos)"
    )
    ratio = after["ms/pair"] / max(before["ms/pair"], 1e-9)
    print(f"  time per pair {before['ms/pair']:.1f} ms -> {after['ms/pair']:.1f} ms ({ratio:.1f}x)")
    print(f"\nbench time {time.perf_counter() - started:.0f} s")


def row(method, names, shots, scores, mixed, views, view_scores) -> dict:
    out = dict.fromkeys(KINDS, 0) | {"orig wins": 0, "good wins": 0, "sharp marked": 0}
    out |= {"caught": 0, "margin": float("inf")}
    out["sharp total"] = 0
    elapsed = pairs = 0.0
    for index, name in enumerate(names):
        labels = ["original", *KINDS]
        images = [shots[name][k] for k in labels]
        values = [scores[name][k] for k in labels]
        if mixed:
            for step in (1, 2):
                other = names[(index + step) % len(names)]
                labels.append("other")
                images.append(shots[other]["original"])
                values.append(scores[other]["original"])
        start = time.perf_counter()
        flags = marks(method, images)
        elapsed += time.perf_counter() - start
        pairs += len(images) * (len(images) - 1) / 2
        rank = ranked(values, flags)
        for kind, value, flag in zip(labels, rank, flags, strict=True):
            if kind in KINDS:
                out[kind] += rank[0] > value
                out["caught"] += flag
                out["margin"] = min(out["margin"], rank[0] - value)
        best = max(range(len(rank)), key=rank.__getitem__)
        out["orig wins"] += best == 0
        out["good wins"] += labels[best] in {"original", "other"}
        for kind, flag in zip(labels, flags, strict=True):
            if kind in {"original", "other"}:
                out["sharp total"] += 1
                out["sharp marked"] += flag
    for images in views.values():  # different photos of one scene: none is damaged
        flags = marks(method, images)
        out["sharp total"] += len(images)
        out["sharp marked"] += sum(flags)
    out["ms/pair"] = 1000 * elapsed / pairs
    out["n"] = len(names)
    return out


def format_row(method: str, r: dict) -> str:
    n = r["n"]
    cells = [f"{r[k]}/{n}".rjust(12) for k in KINDS]
    cells += [f"{r['orig wins']}/{n}".rjust(11), f"{r['good wins']}/{n}".rjust(11)]
    cells.append(f"{r['sharp marked']}/{r['sharp total']}".rjust(14))
    caught = f"{r['caught']}/{n * len(KINDS)}".rjust(8)
    return f"{method:<16}" + "".join(cells) + f"{r['ms/pair']:>9.1f}{caught}{r['margin']:>8.2f}"


if __name__ == "__main__":
    main()
