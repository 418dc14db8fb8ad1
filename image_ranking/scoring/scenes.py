"""Do two images show the same scene: one photo and a copy of it, however it was cropped,
turned, enlarged, darkened, washed out or blurred? And if so, which is the crop of which, where.

Why: a curator's "least damaged copy" and "one photo, one place" both hinge on this, and a
guess is costly both ways: a missed copy lets an enlarged, turned corner beat its original,
and a false "same" takes a different photo away from a POI. So the answer is decided
geometrically, never by a fingerprint: ORB keypoints (OpenCV) matched under a similarity
transform (scale, turn, shift) found by RANSAC, and accepted only when the transform is one a
copy can have (a crop of 15-100% of the frame, turned at most 20 degrees, lying inside the
other image) and its inliers are many, a large share of the matches, and spread over the
crop. A copy too blurred for keypoints is confirmed by a dense comparison of the two whole
frames instead, in two frequency bands, when they have the same framing.

`match` compares features computed once per image (`scene_features`), without the images: a
POI's candidates in a batch, or a new photo against every stored photo of a city. No cheap
fingerprint stands in front of it there: an LSH key of the descriptors that keeps every copy
passes nearly every pair of different photos (bench/city_check.py). See bench/scenes.py for
what was measured, and against what.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import faiss
import numpy as np

from image_ranking.scoring.scene_features import Features

faiss.omp_set_num_threads(1)  # one pair's search is small: threads cost more than they give

RATIO = 0.8  # Lowe's ratio test on Hamming distances
# RANSAC on a similarity (scale, turn, shift), in working pixels of the larger view.
RANSAC_ITERATIONS = 400
INLIER_PIXELS = 4.0
# A transform a copy can have: the crop's share of the larger view's width, and its turn.
SHARE_RANGE = (0.15, 1.15)
MAX_TURN = 20.0
INSIDE_MARGIN = 0.04  # the crop's corners may stick out of the larger view by this share
# What makes a match: this many inliers, this share of the ratio-test matches, and inliers
# spread over this share of the crop's area (convex hull).
MIN_INLIERS = 8
MIN_INLIER_SHARE = 0.2
MIN_SPREAD = 0.01
FULL_FRAME = 0.95  # a match covering this share of both frames, hardly turned, is the same
FULL_FRAME_TURN = 1.0  # framing (degrees); a 90% crop is a crop
# Same framing, for copies too blurred for keypoints: the whole tiny frames agree in
# their smooth layout AND in their structure (a band of detail), by normalized correlation.
# Measured on tests/scoring/scene_set.py's photos: blurred copies >= 0.92 in both; different
# photos <= 0.66 and <= 0.23; the other half of a stereo pair (a step aside) 0.92 and 0.75.
ASPECT_TOLERANCE = 0.03
SMOOTH_SIGMA, BAND_SIGMA = 1.5, 4.0
MIN_FRAME_NCC = 0.85


@dataclass(frozen=True)
class SceneMatch:
    """Image `inner` (0: the first given to `match`, 1: the second) shows `region` of the other.

    `transform` maps the inner image's points to the outer's, both in units of their own
    width: (x / width, y / width). `share` is the inner frame's width as a share of the outer's
    width; `turn` is in degrees, counter-clockwise as seen in the outer image."""

    inner: int
    transform: np.ndarray  # 2x3
    share: float
    turn: float
    inliers: int
    region: tuple[float, float, float, float]  # bounding box: left, top, width, height
    full_frame: bool

    @property
    def outer(self) -> int:
        return 1 - self.inner

    def part_of_outer(self, outer: np.ndarray, inner_shape: tuple[int, int]) -> np.ndarray:
        """The outer image's pixels (an array of any size) showing the inner frame (of
        `inner_shape`, rows x columns), turned upright and sampled at the outer's own
        resolution: what the outer image has of the inner one's view."""
        ow = outer.shape[1]
        ih, iw = inner_shape
        width = max(1, round(self.share * ow))
        height = max(1, round(width * ih / iw))
        # part pixel (u, v) -> inner units (u / width, v / width) -> outer units -> pixels
        m = self.transform / width
        m[:, 2] = self.transform[:, 2]
        m *= ow
        return cv2.warpAffine(
            outer, m, (width, height), flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip


def match(a: Features, b: Features) -> SceneMatch | None:
    """The same scene, or None: `a` a crop (or the same framing) of `b`, or `b` of `a`.
    Keypoints first; the whole-frame comparison only for same-shaped frames they missed."""
    for inner, (small, large) in enumerate(((a, b), (b, a))):
        found = _crop_of(small, large)
        if found is not None:
            return _as_match(inner, small, large, *found)
    if _same_framing(a, b):
        z = b.size[0] / a.size[0]  # a's working pixels -> b's
        return _as_match(0, a, b, complex(z), 0j, 0)
    return None


def _same_framing(a: Features, b: Features) -> bool:
    if a.tiny.size == 0 or b.tiny.size == 0:
        return False
    aspect_a, aspect_b = a.size[1] / a.size[0], b.size[1] / b.size[0]
    if abs(aspect_a / aspect_b - 1) > ASPECT_TOLERANCE:
        return False
    x = a.tiny.astype(np.float32)
    y = cv2.resize(
        b.tiny.astype(np.float32), (x.shape[1], x.shape[0]), interpolation=cv2.INTER_AREA
    )
    smooth_x = cv2.GaussianBlur(x, (0, 0), SMOOTH_SIGMA)
    smooth_y = cv2.GaussianBlur(y, (0, 0), SMOOTH_SIGMA)
    band_x = smooth_x - cv2.GaussianBlur(x, (0, 0), BAND_SIGMA)
    band_y = smooth_y - cv2.GaussianBlur(y, (0, 0), BAND_SIGMA)
    return min(_ncc(smooth_x, smooth_y), _ncc(band_x, band_y)) >= MIN_FRAME_NCC


def _ncc(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    norm = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum()) / norm if norm > 1e-6 else 0.0


def _crop_of(inner: Features, outer: Features) -> tuple[complex, complex, int] | None:
    """(z, t, inliers) with outer point = z * inner point + t (complex numbers, working
    pixels) when `inner` is a crop of `outer`."""
    if len(inner.coarse) < MIN_INLIERS or len(outer.fine) < MIN_INLIERS:
        return None
    distance, nearest = two_nearest(inner.coarse.descriptors, outer.fine.descriptors)
    passed = np.flatnonzero(distance[:, 0] < RATIO * distance[:, 1])
    # each outer point once, with its closest inner point
    passed = passed[np.lexsort((distance[passed, 0], nearest[passed, 0]))]
    first = np.ones(len(passed), bool)
    first[1:] = nearest[passed[1:], 0] != nearest[passed[:-1], 0]
    src_index = passed[first]
    dst_index = nearest[src_index, 0]
    if len(src_index) < MIN_INLIERS:
        return None
    good = src_index
    src = _complex(inner.coarse.xy[src_index])
    dst = _complex(outer.fine.xy[dst_index])
    found = _ransac(src, dst, inner.size[0] / outer.size[0])
    if found is None:
        return None
    z, t, inliers = found
    count = int(inliers.sum())
    if count < MIN_INLIERS or count < MIN_INLIER_SHARE * len(good):
        return None
    if _hull_area(src[inliers]) < MIN_SPREAD * inner.size[0] * inner.size[1]:
        return None
    if not _inside(z, t, inner.size, outer.size):
        return None
    return z, t, count


def two_nearest(queries: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each query descriptor's two nearest train descriptors (Hamming): distances and indices,
    (n, 2) int32 each, as cv2.batchDistance(..., K=2) gives them. Why faiss: its exhaustive
    binary search gives the same distances about 4x faster, and this search is nearly all of
    a match's time (bench/city_check.py)."""
    index = faiss.IndexBinaryFlat(8 * train.shape[1])
    index.add(np.ascontiguousarray(train))
    distance, nearest = index.search(np.ascontiguousarray(queries), 2)
    return distance, nearest


def _complex(xy: np.ndarray) -> np.ndarray:
    return xy[:, 0].astype(np.float64) + 1j * xy[:, 1].astype(np.float64)


def _ransac(src: np.ndarray, dst: np.ndarray, width_ratio: float):
    """The similarity with the most inliers among those a copy can have, refined by least
    squares on its inliers: (z, t, inlier mask), or None."""
    rng = np.random.default_rng(len(src))  # the same answer for the same input
    n = len(src)
    i = rng.integers(0, n, RANSAC_ITERATIONS)
    j = rng.integers(0, n, RANSAC_ITERATIONS)
    d = src[j] - src[i]
    ok = np.abs(d) > 8.0
    z = np.where(ok, (dst[j] - dst[i]) / np.where(ok, d, 1), 0)
    plausible = ok & _plausible(z, width_ratio)
    if not plausible.any():
        return None
    z, i = z[plausible], i[plausible]
    t = dst[i] - z * src[i]
    residual = np.abs(z[:, None] * src[None, :] + t[:, None] - dst[None, :])
    best = int(np.argmax((residual < INLIER_PIXELS).sum(1)))
    z_best, t_best = z[best], t[best]
    inliers = residual[best] < INLIER_PIXELS
    for _ in range(2):  # refine on the inliers, then take the inliers of the refined fit
        if inliers.sum() < 3:
            return None
        z_best, t_best = _fit(src[inliers], dst[inliers])
        if not _plausible(np.array([z_best]), width_ratio)[0]:
            return None
        inliers = np.abs(z_best * src + t_best - dst) < INLIER_PIXELS
    return z_best, t_best, inliers


def _plausible(z: np.ndarray, width_ratio: float) -> np.ndarray:
    share = np.abs(z) * width_ratio
    turn = np.degrees(np.abs(np.angle(z)))
    return (share >= SHARE_RANGE[0]) & (share <= SHARE_RANGE[1]) & (turn <= MAX_TURN)


def _fit(src: np.ndarray, dst: np.ndarray) -> tuple[complex, complex]:
    """Least-squares similarity dst = z * src + t."""
    ms, md = src.mean(), dst.mean()
    s, d = src - ms, dst - md
    z = (np.conj(s) * d).sum() / max((np.abs(s) ** 2).sum(), 1e-9)
    return complex(z), complex(md - z * ms)


def _hull_area(points: np.ndarray) -> float:
    if len(points) < 3:
        return 0.0
    xy = np.stack([points.real, points.imag], 1).astype(np.float32)
    return float(cv2.contourArea(cv2.convexHull(xy)))


def _corners(z: complex, t: complex, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    return z * np.array([0, w, w + 1j * h, 1j * h]) + t


def _inside(z: complex, t: complex, inner: tuple[int, int], outer: tuple[int, int]) -> bool:
    corners = _corners(z, t, inner)
    w, h = outer
    mx, my = INSIDE_MARGIN * w, INSIDE_MARGIN * h
    return bool(
        (corners.real >= -mx).all()
        and (corners.real <= w + mx).all()
        and (corners.imag >= -my).all()
        and (corners.imag <= h + my).all()
    )


def _as_match(inner: int, small: Features, large: Features, z, t, count: int) -> SceneMatch:
    (iw, _), (ow, oh) = small.size, large.size
    # in units of each image's own width
    zn, tn = z * iw / ow, t / ow
    transform = np.array([[zn.real, -zn.imag, tn.real], [zn.imag, zn.real, tn.imag]])
    corners = _corners(z, t, small.size)
    left, right = max(0.0, corners.real.min() / ow), min(1.0, corners.real.max() / ow)
    top, bottom = max(0.0, corners.imag.min() / oh), min(1.0, corners.imag.max() / oh)
    region = (left, top, right - left, bottom - top)
    share = abs(zn)
    turn = -math.degrees(np.angle(zn))
    return SceneMatch(
        inner=inner,
        transform=transform,
        share=share,
        turn=turn,
        inliers=count,
        region=region,
        full_frame=min(region[2], region[3]) >= FULL_FRAME and abs(turn) < FULL_FRAME_TURN,
    )
