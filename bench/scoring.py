"""NIMA scoring speed in ONNX Runtime vs a naive plain-numpy forward pass, side by side.

Workload: Commons-like 330px JPEG thumbnails (scikit-image's real photos and degraded copies,
LANCZOS-resized, JPEG q85) held in memory, as the ranking pipeline holds them. Each timed
image includes decode (`open_image`), RGB conversion, the 224x224 NEAREST resize and the model.

Reported for ONNX Runtime (our scorer) and for the baseline (the same preprocessing, then
tests/scoring/reference.py's numpy forward pass in float32, layer by layer as Keras defined
it): images/s at batch 1 and batch 10 (median of 5 alternating rounds), model load time,
peak RSS; then the ratios.
Targets on the 2-core machine: >= 70 thumbnails/s at batch 10, load < 1 s, RSS < 400 MB
(the original tf.keras model: about 50 images/s at batch 1, 58 at batch 16).

Run: .venv/bin/python bench/scoring.py [--images 200]   (needs `make model`)
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "city_wiki.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")  # a development tool

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from PIL import Image  # noqa: E402

from image_ranking.scoring.imaging import open_image  # noqa: E402
from image_ranking.scoring.nima import NimaScorer, preprocess  # noqa: E402
from tests.fakes.images import PHOTO_NAMES, degrade, photo  # noqa: E402

THUMB_WIDTH = 330


def thumbnails() -> list[bytes]:
    """330px JPEG thumbnails as Commons renders them: originals and degraded copies."""
    out = []
    for name in PHOTO_NAMES:
        original = photo(name)
        for image in (original, degrade(original, "dark"), degrade(original, "blur")):
            height = round(image.height * THUMB_WIDTH / image.width)
            thumb = image.resize((THUMB_WIDTH, height), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            thumb.save(buffer, "JPEG", quality=85)
            out.append(buffer.getvalue())
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def throughput(score_batch, data: list[bytes], total: int, batch: int) -> float:
    """Images per second, decode + preprocess + model, over `total` images."""
    score_batch([open_image(data[0])])  # warm-up (allocations, thread pool)
    done, started = 0, time.perf_counter()
    while done < total:
        chunk = [data[(done + i) % len(data)] for i in range(batch)]
        score_batch([open_image(raw) for raw in chunk])
        done += batch
    return done / (time.perf_counter() - started)


def interleaved(score_batch, data: list[bytes], total: int, rounds: int = 5) -> dict[int, float]:
    """Median images/s per batch size over rounds that alternate batch 1 and batch 10, so a
    burst of load from other processes on the shared cores hits both sizes alike."""
    rates: dict[int, list[float]] = {1: [], 10: []}
    for _ in range(rounds):
        for batch in rates:
            rates[batch].append(throughput(score_batch, data, max(10, total // rounds), batch))
    return {batch: float(np.median(values)) for batch, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200, help="images per measurement")
    args = parser.parse_args()
    data = thumbnails()
    directory = Path(settings.SCORING_MODEL_DIR) / "nima"
    rss_before = peak_rss_mb()

    started = time.perf_counter()
    scorer = NimaScorer(directory)  # includes the cache check (SHA-256) and onnxruntime import
    ort_load = time.perf_counter() - started
    ort = interleaved(scorer.score, data, args.images)
    ort_rss = peak_rss_mb()

    from tests.scoring.reference import forward, load_layers

    started = time.perf_counter()
    layers = load_layers(directory / "weights_mobilenet_aesthetic_0.07.hdf5")
    base_load = time.perf_counter() - started

    def baseline(images):
        return forward(layers, np.stack([preprocess(i) for i in images]), dtype=np.float32)

    base_total = max(20, args.images // 5)  # the baseline is slow; fewer images suffice
    base = interleaved(baseline, data, base_total)
    base_rss = peak_rss_mb()

    threads = settings.SCORING_THREADS or "ORT default"
    print(
        f"NIMA scoring, {len(data)} distinct {THUMB_WIDTH}px JPEG thumbnails, "
        f"{os.cpu_count()} CPUs, SCORING_THREADS={threads}"
    )
    print(f"{'':28}{'ONNX Runtime':>14}{'numpy baseline':>16}{'ratio':>8}")
    for b in (1, 10):
        print(
            f"{f'images/s at batch {b}':28}{ort[b]:>14.1f}{base[b]:>16.1f}{ort[b] / base[b]:>7.1f}x"
        )
    print(f"{'model load (s)':28}{ort_load:>14.3f}{base_load:>16.3f}  (baseline: HDF5 read only)")
    print(
        f"{'peak RSS (MB)':28}{ort_rss:>14.0f}{base_rss:>16.0f}"
        f"{'':>8}  (process before loading: {rss_before:.0f} MB; baseline runs after ORT,"
        " so its peak includes ORT's)"
    )
    ok = ort[10] >= 70 and ort_load < 1 and ort_rss < 400
    print(f"targets (>= 70/s at batch 10, load < 1 s, RSS < 400 MB): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
