"""Which ranking method lets a POI's real photos beat degraded copies, without calling a sharp
photo blurred just because another candidate shows a more detailed scene?

Each "POI" is built from real photos (scikit-image's samples, plus ../shared/data/
nima_test_images when present) and degraded copies (dark, blurred, badly cropped), as Commons
would offer a good upload next to careless ones. Every image is thumbnailed the way Commons does
(LANCZOS to a standard width, JPEG) and scored by the real NIMA model. Two scenarios:
  same scene    candidates = one photo + its three degraded copies
  mixed scenes  the same, plus two OTHER real photos (as a place's Commons photos differ:
                sky-heavy facades next to foliage); any undegraded photo winning is right
  offline demo  the sets scripts/demo_commons.py serves (a photo, its copies, one other photo)

Methods (NIMA at the width, then a 1-point penalty for what the check calls blurred):
  nima            no sharpness check
  +relative       previous method: Laplacian variance under 20% of the POI's sharpest
  +near-dup       chosen method (image_ranking.scoring.sharpness): the same 20% rule, but only
                  against near-duplicates (64-bit difference hash within 10 bits)
  +reblur         alternative: Crete-Roffet et al. 2007 no-reference blur over an absolute cut
Reported per scenario: the share of POIs an undegraded photo wins, how often each degraded copy
is beaten by the original, how often a sharp (undegraded) photo is wrongly marked blurred, how
many blurred copies are caught, how often the undegraded photo NIMA scores highest wins,
rank-score percentiles, and the threshold the data suggests.

Run: .venv/bin/python bench/blur_choice.py   (needs `python manage.py install_scoring_model`)
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "city_wiki.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")  # a development tool

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402
from PIL import Image  # noqa: E402

from image_ranking.scoring import get_scorer, sharpness  # noqa: E402
from tests.fakes.images import PHOTO_NAMES, degrade, photo  # noqa: E402
from tests.scoring import hash_baseline  # noqa: E402

SHARED_IMAGES = ROOT.parent / "shared" / "data" / "nima_test_images"
DEGRADATIONS = ("dark", "blur", "crop")
KINDS = ("original", *DEGRADATIONS)
WIDTHS = (330, 500)
METHODS = ("nima", "+relative", "+near-dup", "+reblur")
REBLUR_CUT = 0.5  # between the blurriest original (0.41) and the sharpest blur copy (0.54)
OTHERS = 2  # different photos added to each POI in the mixed scenario
CUTS = (4.0, 4.2, 4.4, 4.5, 4.6, 4.8)


@dataclass
class Shot:
    """One thumbnail: its photo, kind, NIMA score and the sharpness features."""

    photo: str
    kind: str
    score: float
    laplacian: float
    dhash: int
    reblur: float

    @property
    def undegraded(self) -> bool:
        return self.kind == "original"


def real_photos() -> dict[str, Image.Image]:
    photos = {name: photo(name) for name in PHOTO_NAMES}
    if SHARED_IMAGES.is_dir():
        for path in sorted(SHARED_IMAGES.glob("*.jpg")):
            photos[f"nima/{path.stem}"] = Image.open(path).convert("RGB")
    return photos


def commons_thumbnail(image: Image.Image, width: int) -> Image.Image:
    """What Commons serves at a standard width (never wider than the original), as JPEG."""
    if image.width > width:
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def reblur(image: Image.Image) -> float:
    """Crete-Roffet et al. 2007: the share of neighbour-pixel variation that survives a 9-tap
    blur (0 = sharp, 1 = blurred), the worse of the two directions, at the measuring width."""
    grey = image.convert("L")
    width = hash_baseline.MEASURE_WIDTH
    grey = grey.resize((width, max(1, round(grey.height * width / grey.width))))
    pixels = np.asarray(grey, dtype=np.float64)
    values = []
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (4, 4)
        blurred = sliding_window_view(np.pad(pixels, pad, mode="edge"), 9, axis=axis).mean(-1)
        d_sharp = np.abs(np.diff(pixels, axis=axis))
        d_blur = np.abs(np.diff(blurred, axis=axis))
        total = d_sharp.sum()
        lost = np.maximum(0, d_sharp - d_blur).sum()
        values.append((total - lost) / total if total > 0 else 1.0)
    return float(max(values))


def measure() -> dict[int, dict[str, dict[str, Shot]]]:
    """shots[width][photo][kind]: every version of every photo, scored one POI per batch."""
    scorer = get_scorer("nima")
    shots: dict[int, dict[str, dict[str, Shot]]] = {w: {} for w in WIDTHS}
    for name, original in real_photos().items():
        versions = {"original": original} | {k: degrade(original, k) for k in DEGRADATIONS}
        for width in WIDTHS:
            thumbs = {k: commons_thumbnail(v, width) for k, v in versions.items()}
            results = scorer.score(list(thumbs.values()))
            shots[width][name] = {
                kind: Shot(
                    name,
                    kind,
                    r.score,
                    hash_baseline.laplacian_variance(t),
                    hash_baseline.difference_hash(t),
                    reblur(t),
                )
                for (kind, t), r in zip(thumbs.items(), results, strict=True)
            }
    return shots


def pois(by_photo: dict[str, dict[str, Shot]], mixed: bool) -> list[list[Shot]]:
    """Each POI's candidates; in the mixed scenario plus the originals of the next photos."""
    names = list(by_photo)
    out = []
    for index, name in enumerate(names):
        candidates = [by_photo[name][k] for k in KINDS]
        if mixed:
            for step in range(1, OTHERS + 1):
                candidates.append(by_photo[names[(index + step) % len(names)]]["original"])
        out.append(candidates)
    return out


def blurred(method: str, candidates: list[Shot]) -> list[bool]:
    if method == "nima":
        return [False] * len(candidates)
    if method == "+relative":
        best = max(c.laplacian for c in candidates)
        return [best > 0 and c.laplacian < sharpness.BLUR_RATIO * best for c in candidates]
    if method == "+near-dup":
        copies = hash_baseline.blurred_among(
            [c.laplacian for c in candidates], [c.dhash for c in candidates]
        )
        return [source is not None for source in copies]
    if method == "+reblur":
        return [c.reblur > REBLUR_CUT for c in candidates]
    raise ValueError(method)


def rank_scores(method: str, candidates: list[Shot]) -> list[float]:
    flags = blurred(method, candidates)
    return [sharpness.ranking_score(c.score, f) for c, f in zip(candidates, flags, strict=True)]


def report(shots: dict[int, dict[str, dict[str, Shot]]]) -> None:
    photos = list(shots[WIDTHS[0]])
    print(f"{len(photos)} real photos: {', '.join(photos)}")
    for mixed in (False, True):
        title = "mixed scenes" if mixed else "same scene"
        extra = f" + {OTHERS} other photos" if mixed else ""
        print(f"\n=== {title}: {len(photos)} POIs x (original, {', '.join(DEGRADATIONS)}{extra})")
        print(
            f"{'method':<16} {'good wins':>10} "
            + " ".join(f"{'beats ' + d:>10}" for d in DEGRADATIONS)
            + f" {'sharp->blurred':>15} {'blur caught':>12} {'top good wins':>14}"
        )
        for width in WIDTHS:
            for method in METHODS:
                print(row(method, width, pois(shots[width], mixed)))
        print("Rank-score percentiles at 500px (10th / 50th / 90th): undegraded | degraded")
        for method in METHODS:
            good, bad = split_scores(method, pois(shots[500], mixed))
            print(f"  {method:<10} {percentiles(good)} | {percentiles(bad)}")
        threshold_table(pois(shots[500], mixed))
    demo_check(shots[500])
    print("\nSharpness features at 500px (min / max): original | dark | blur | crop")
    for name, attr in (("laplacian", "laplacian"), ("reblur", "reblur")):
        cells = []
        for kind in KINDS:
            values = [shots[500][p][kind].__getattribute__(attr) for p in photos]
            cells.append(f"{min(values):.3f}/{max(values):.3f}")
        print(f"  {name:<10} " + " | ".join(cells))
    distances = {kind: [] for kind in KINDS[1:]}
    for p in photos:
        for kind in KINDS[1:]:
            own = shots[500][p]
            distances[kind].append((own["original"].dhash ^ own[kind].dhash).bit_count())
    cross = [
        (a.dhash ^ b.dhash).bit_count()
        for i, p in enumerate(photos)
        for q in photos[i + 1 :]
        for a in shots[500][p].values()
        for b in shots[500][q].values()
    ]
    print(
        "  dhash bits from the original, max: "
        + ", ".join(f"{k} {max(v)}" for k, v in distances.items())
        + f"; between different photos (any versions), min {min(cross)}"
        + f" (near-duplicate bound {hash_baseline.NEAR_DUPLICATE_BITS})"
    )


def demo_check(by_photo: dict[str, dict[str, Shot]]) -> None:
    """The offline demo's sets (scripts/demo_commons.py): a photo, its blur/dark/crop copies
    and one different "detail" photo per listed POI; how many are flagged below threshold."""
    from scripts.demo_commons import listed_pois

    cut = settings.IMAGE_RANKING_THRESHOLD
    sets = []
    for index, _poi in enumerate(listed_pois()):
        if index % 7 == 6:
            continue  # the demo gives these no hits
        main = PHOTO_NAMES[index % len(PHOTO_NAMES)]
        other = PHOTO_NAMES[(index + 3) % len(PHOTO_NAMES)]
        sets.append([by_photo[main][k] for k in KINDS] + [by_photo[other]["original"]])
    print(f"\n=== offline demo sets at 500px: {len(sets)} POIs with hits, threshold {cut}")
    print(f"{'method':<12} {'flagged':>8} {'sharp->blurred':>15} {'good wins':>10}")
    for method in METHODS:
        flagged = marked = wins = 0
        for candidates in sets:
            scores = rank_scores(method, candidates)
            flags = blurred(method, candidates)
            flagged += max(scores) < cut
            marked += sum(f for c, f in zip(candidates, flags, strict=True) if c.undegraded)
            wins += candidates[int(np.argmax(scores))].undegraded
        n = len(sets)
        print(f"{method:<12} {flagged:>4}/{n:<3} {marked:>10}/{2 * n:<4} {wins:>6}/{n:<3}")


def row(method: str, width: int, candidate_sets: list[list[Shot]]) -> str:
    wins = 0
    beats = dict.fromkeys(DEGRADATIONS, 0)
    sharp_marked = sharp_total = blur_caught = top = 0
    for candidates in candidate_sets:
        scores = rank_scores(method, candidates)
        flags = blurred(method, candidates)
        winner = candidates[int(np.argmax(scores))]
        wins += winner.undegraded
        original = scores[0]
        for index, c in enumerate(candidates[: len(KINDS)]):
            if c.kind in beats:
                beats[c.kind] += original > scores[index]
        for c, f in zip(candidates, flags, strict=True):
            if c.undegraded:
                sharp_total += 1
                sharp_marked += f
            elif c.kind == "blur":
                blur_caught += f
        # the undegraded photo NIMA likes best should win: a penalty on it is a wrong call
        top += winner is max((c for c in candidates if c.undegraded), key=lambda c: c.score)
    n = len(candidate_sets)
    cells = " ".join(f"{beats[d] / n:>10.0%}" for d in DEGRADATIONS)
    return (
        f"{method + '@' + str(width):<16} {wins:>3}/{n} {wins / n:>4.0%} {cells}"
        f" {sharp_marked:>6}/{sharp_total:<3} {sharp_marked / sharp_total:>4.0%}"
        f" {blur_caught:>8}/{n:<3} {top:>10}/{n:<3}"
    )


def split_scores(method: str, candidate_sets: list[list[Shot]]) -> tuple[list, list]:
    good, bad = [], []
    for candidates in candidate_sets:
        for c, s in zip(candidates, rank_scores(method, candidates), strict=True):
            (good if c.undegraded else bad).append(s)
    return good, bad


def threshold_table(candidate_sets: list[list[Shot]]) -> None:
    """For the chosen method: keep undegraded photos, refuse degraded copies, flag no POI that
    has a good photo (a POI's best rank score under the cut is flagged below_threshold)."""
    good, bad = (np.array(v) for v in split_scores("+near-dup", candidate_sets))
    best = best_threshold(good, bad)
    current = settings.IMAGE_RANKING_THRESHOLD
    print(
        f"Threshold (+near-dup@500): balanced accuracy best at {best[0]:.2f} "
        f"(undegraded kept {best[1]:.0%}, degraded refused {best[2]:.0%}); setting: {current}"
    )
    print("  cut   undegraded kept   degraded refused (dark / blur / crop)   POIs flagged")
    for cut in CUTS:
        kinds = {d: [] for d in DEGRADATIONS}
        flagged = 0
        for candidates in candidate_sets:
            scores = rank_scores("+near-dup", candidates)
            for c, s in zip(candidates, scores, strict=True):
                if c.kind in kinds:
                    kinds[c.kind].append(s < cut)
            flagged += max(scores) < cut
        per_kind = " / ".join(f"{np.mean(v):.0%}" for v in kinds.values())
        print(
            f"  {cut:.1f}  {np.mean(good >= cut):>15.0%}   {np.mean(bad < cut):>8.0%} "
            f"({per_kind}){flagged:>18}/{len(candidate_sets)}"
        )


def percentiles(values: list[float]) -> str:
    p = np.percentile(values, [10, 50, 90])
    return " / ".join(f"{v:.2f}" for v in p)


def best_threshold(good: np.ndarray, bad: np.ndarray) -> tuple[float, float, float]:
    """The cut (0.05 grid) with the best balanced accuracy; ties go to the lower cut."""
    best = (0.0, 0.0, 0.0, -1.0)
    for cut in np.round(np.arange(3.0, 6.0, 0.05), 2):
        kept = float((good >= cut).mean())
        refused = float((bad < cut).mean())
        if (kept + refused) / 2 > best[3] + 1e-9:
            best = (float(cut), kept, refused, (kept + refused) / 2)
    return best[:3]


if __name__ == "__main__":
    report(measure())
