"""What the same-scene test (`scenes.match`) needs of one image, computed once and kept as
bytes: ORB keypoints on a grid (the fine set, for when this image is the larger view), ORB
keypoints of the whole frame at several scales (the coarse set, for when it is a crop of
another), and the whole frame at 64 px (for copies too blurred for keypoints).

Why apart from the matching: features are computed once per candidate and stored with a POI's
photo (`Features.to_bytes`, about 50 KB), then compared many times without the image: a POI's
candidates in a batch, or every stored photo of a city.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

cv2.setNumThreads(1)  # a POI's ten images are small: threads cost more than they give

WORK_SIDE = 512  # features are computed with the longer side at most this long
MIN_SIDE = 32  # smaller images have no features
# Fine keypoints: one level, spread over a grid, for when this image is the larger view.
FINE_COUNT = 1000
GRID = (8, 6)
# Keypoints of the whole frame at several scales, for when this image is a crop of another:
# a crop of a quarter of the frame matches the other's fine keypoints at a quarter the size.
# (scale, keypoints): more at the small scales, where a small crop has few keypoints to match.
COARSE_LEVELS = ((1.0, 60), (0.71, 60), (0.5, 80), (0.35, 100), (0.25, 100))
FAST_THRESHOLD = 10  # on the equalized grey image: dark and washed-out copies keep corners
TINY_SIDE = 64  # the whole frame, grey, this long on its longer side
MAGIC = b"SCN1"
HEADER = "<4sHHHHHH"  # magic, width, height, fine and coarse counts, tiny height and width


@dataclass(frozen=True)
class Points:
    xy: np.ndarray  # (n, 2) float32, working pixels
    descriptors: np.ndarray  # (n, 32) uint8 ORB descriptors

    @classmethod
    def empty(cls) -> Points:
        return cls(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))

    def __len__(self) -> int:
        return len(self.xy)


@dataclass(frozen=True)
class Features:
    """What matching needs of one image: computed once (`features`), stored as bytes."""

    size: tuple[int, int]  # working size (width, height)
    fine: Points
    coarse: Points
    tiny: np.ndarray  # grey, TINY_SIDE on its longer side (uint8): the whole frame

    def to_bytes(self) -> bytes:
        head = (MAGIC, *self.size, len(self.fine), len(self.coarse), *self.tiny.shape)
        parts = [struct.pack(HEADER, *head)]
        for points in (self.fine, self.coarse):
            parts.append(np.round(points.xy * 16).astype("<u2").tobytes())
            parts.append(points.descriptors.tobytes())
        parts.append(self.tiny.astype(np.uint8).tobytes())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Features:
        magic, w, h, n_fine, n_coarse, th, tw = struct.unpack_from(HEADER, data)
        if magic != MAGIC:
            raise ValueError("not scene features of this version")
        offset = struct.calcsize(HEADER)
        sets = []
        for n in (n_fine, n_coarse):
            xy = np.frombuffer(data, "<u2", 2 * n, offset).reshape(n, 2) / np.float32(16)
            offset += 4 * n
            descriptors = np.frombuffer(data, np.uint8, 32 * n, offset).reshape(n, 32)
            offset += 32 * n
            sets.append(Points(xy.astype(np.float32), descriptors))
        tiny = np.frombuffer(data, np.uint8, th * tw, offset).reshape(th, tw)
        return cls((w, h), *sets, tiny)


def features(image: Image.Image) -> Features:
    """The image's keypoints, computed once: both sets empty for an image too small or too
    flat to have any (it then matches nothing)."""
    grey = _working_grey(image)
    size = (grey.shape[1], grey.shape[0])
    if min(size) < MIN_SIDE:
        return Features(size, Points.empty(), Points.empty(), np.zeros((0, 0), np.uint8))
    scale = TINY_SIDE / max(size)
    tiny_size = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    tiny = cv2.resize(grey, tiny_size, interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    detector = cv2.ORB_create(
        nfeatures=4 * FINE_COUNT, nlevels=1, edgeThreshold=16, patchSize=31,
        fastThreshold=FAST_THRESHOLD,
    )  # fmt: skip
    fine = _spread(detector, grey, FINE_COUNT)
    coarse = [_level(detector, grey, scale, count) for scale, count in COARSE_LEVELS]
    coarse = Points(
        np.concatenate([c.xy for c in coarse]), np.concatenate([c.descriptors for c in coarse])
    )
    return Features(size, fine, coarse, tiny)


def _working_grey(image: Image.Image) -> np.ndarray:
    grey = image.convert("L")
    if max(grey.size) > WORK_SIDE:
        grey = grey.copy()
        grey.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
    return np.asarray(grey)


def _spread(detector, grey: np.ndarray, count: int) -> Points:
    """The strongest keypoints of each grid cell, then the strongest of the rest: a crop of a
    plain corner still has keypoints of its own in the larger view."""
    keypoints = detector.detect(grey)
    if not keypoints:
        return Points.empty()
    h, w = grey.shape
    cols, rows = GRID
    xy = cv2.KeyPoint_convert(keypoints)
    response = np.fromiter((k.response for k in keypoints), np.float32, len(keypoints))
    cell = np.minimum(xy[:, 0] * cols // w, cols - 1) + cols * np.minimum(
        xy[:, 1] * rows // h, rows - 1
    )
    order = np.lexsort((-response, cell))  # by cell, strongest first
    first = np.searchsorted(cell[order], cell[order], side="left")
    rank = np.empty(len(order), int)
    rank[order] = np.arange(len(order)) - first
    share = count // (cols * rows)
    chosen = rank < share
    rest = np.flatnonzero(~chosen)
    rest = rest[np.argsort(-response[rest])][: max(0, count - int(chosen.sum()))]
    picked = [keypoints[i] for i in np.concatenate([np.flatnonzero(chosen), rest])]
    picked, descriptors = detector.compute(grey, picked)
    if descriptors is None:
        return Points.empty()
    return Points(cv2.KeyPoint_convert(picked), descriptors)


def _level(detector, grey: np.ndarray, scale: float, count: int) -> Points:
    if scale != 1.0:
        size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
        if min(size) < MIN_SIDE:
            return Points.empty()
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    detector.setMaxFeatures(count)
    keypoints, descriptors = detector.detectAndCompute(grey, None)
    detector.setMaxFeatures(4 * FINE_COUNT)
    if descriptors is None:
        return Points.empty()
    return Points(cv2.KeyPoint_convert(keypoints) / scale, descriptors)
