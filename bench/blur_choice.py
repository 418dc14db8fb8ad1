"""Which thumbnail and ranking method lets a POI's real photo beat its degraded copies?

Each "POI" is one real photo (scikit-image's samples, plus ../shared/data/nima_test_images
when present) and three degraded copies made from it (dark, blurred, badly cropped), as
Commons would offer a good upload next to careless ones. Every copy is thumbnailed the way
Commons does (LANCZOS to a standard width, JPEG) and scored by the real NIMA model.

Methods compared (the pipeline's `IMAGE_RANKING_THUMB_WIDTH` and `image_ranking.sharpness`):
  nima@330          the faithful pipeline: NIMA on the 330px thumbnail
  nima@500          NIMA on the 500px standard rendition
  nima@330+sharp    330px, minus a penalty for a candidate far blurrier than the POI's sharpest
  nima@500+sharp    500px with the same sharpness check
Reported: the share of POIs where the original wins, per method and per degradation, the
score percentiles of originals vs degraded copies, and the threshold they suggest.

Run: .venv/bin/python bench/blur_choice.py   (needs `python manage.py install_scoring_model`)
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "city_wiki.settings")

import django  # noqa: E402

django.setup()

from PIL import Image  # noqa: E402

from image_ranking import sharpness  # noqa: E402
from image_ranking.scoring import get_scorer  # noqa: E402
from tests.fakes.images import PHOTO_NAMES, degrade, photo  # noqa: E402

SHARED_IMAGES = ROOT.parent / "shared" / "data" / "nima_test_images"
DEGRADATIONS = ("dark", "blur", "crop")
WIDTHS = (330, 500)


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


def measure() -> dict:
    scorer = get_scorer("nima")
    photos = real_photos()
    # scores[width][poi] = {"original": s, "dark": s, ...}; sharp[width][poi] likewise
    scores: dict[int, dict[str, dict[str, float]]] = {w: {} for w in WIDTHS}
    sharp: dict[int, dict[str, dict[str, float]]] = {w: {} for w in WIDTHS}
    for name, original in photos.items():
        versions = {"original": original} | {k: degrade(original, k) for k in DEGRADATIONS}
        for width in WIDTHS:
            thumbs = {k: commons_thumbnail(v, width) for k, v in versions.items()}
            results = scorer.score(list(thumbs.values()))  # one batch per POI, as in ranking
            scores[width][name] = {k: r.score for k, r in zip(thumbs, results, strict=True)}
            rel = sharpness.relative_sharpness(
                [sharpness.laplacian_variance(t) for t in thumbs.values()]
            )
            sharp[width][name] = dict(zip(thumbs, rel, strict=True))
    return {"scores": scores, "sharp": sharp, "pois": list(photos)}


def ranked(data: dict, width: int, with_sharpness: bool) -> dict[str, dict[str, float]]:
    out = {}
    for poi, by_kind in data["scores"][width].items():
        out[poi] = {
            kind: sharpness.ranking_score(s, data["sharp"][width][poi][kind])
            if with_sharpness
            else s
            for kind, s in by_kind.items()
        }
    return out


def report(data: dict) -> None:
    pois = data["pois"]
    print(f"{len(pois)} POIs (real photos) x 4 candidates: original, {', '.join(DEGRADATIONS)}")
    print(f"photos: {', '.join(pois)}\n")
    header = f"{'method':<16} {'original wins':>14} " + " ".join(
        f"{'beats ' + d:>12}" for d in DEGRADATIONS
    )
    print(header)
    for width in WIDTHS:
        for with_sharp in (False, True):
            table = ranked(data, width, with_sharp)
            wins = sum(1 for s in table.values() if max(s, key=s.get) == "original")
            beats = [sum(s["original"] > s[d] for s in table.values()) for d in DEGRADATIONS]
            label = f"nima@{width}" + ("+sharp" if with_sharp else "")
            cells = " ".join(f"{b / len(table):>12.0%}" for b in beats)
            print(f"{label:<16} {wins}/{len(table)} = {wins / len(table):>5.0%} {cells}")
    print("\nRaw NIMA score percentiles (10th / 50th / 90th):")
    for width in WIDTHS:
        originals = [s["original"] for s in data["scores"][width].values()]
        print(f"  {width}px originals : {percentiles(originals)}")
        for kind in DEGRADATIONS:
            values = [s[kind] for s in data["scores"][width].values()]
            print(f"  {width}px {kind:<9} : {percentiles(values)}")
    print("\nThreshold (score a photo must reach), from the chosen method nima@500+sharp:")
    table = ranked(data, 500, True)
    good = np.array([s["original"] for s in table.values()])
    bad = np.array([s[d] for s in table.values() for d in DEGRADATIONS])
    best = best_threshold(good, bad)
    print(
        f"  balanced accuracy is highest at {best[0]:.2f} "
        f"(originals kept {best[1]:.0%}, degraded copies refused {best[2]:.0%})"
    )
    below = [poi for poi, s in table.items() if s["original"] < best[0]]
    print(f"  originals under it: {', '.join(below) or 'none'}")
    p10 = float(np.percentile(good, 10))
    print(f"  10th percentile of originals: {p10:.2f} (9 in 10 good photos pass)")
    print("  cut   originals kept   degraded refused (dark / blur / crop)")
    for cut in (3.8, 4.0, 4.2, 4.4, 4.5, 4.6):
        per_kind = " / ".join(
            f"{np.mean([s[d] < cut for s in table.values()]):.0%}" for d in DEGRADATIONS
        )
        print(
            f"  {cut:.1f}  {np.mean(good >= cut):>14.0%}   {np.mean(bad < cut):>8.0%} ({per_kind})"
        )


def percentiles(values: list[float]) -> str:
    p = np.percentile(values, [10, 50, 90])
    return " / ".join(f"{v:.2f}" for v in p)


def best_threshold(good: np.ndarray, bad: np.ndarray) -> tuple[float, float, float]:
    """The cut (0.05 grid) with the best balanced accuracy; ties go to the lower cut."""
    candidates = np.round(np.arange(3.0, 6.0, 0.05), 2)
    best = (0.0, 0.0, 0.0, -1.0)
    for cut in candidates:
        kept = float((good >= cut).mean())
        refused = float((bad < cut).mean())
        accuracy = (kept + refused) / 2
        if accuracy > best[3] + 1e-9:
            best = (float(cut), kept, refused, accuracy)
    return best[:3]


if __name__ == "__main__":
    report(measure())
