"""The same-scene search scoring/scenes.py replaced, kept unchanged as bench/scenes.py's baseline
(it was image_ranking/scoring/copies.py): the same framing, or one a crop of the other.

Why: technical quality (exposure, contrast, focus, real resolution) can only be compared between
versions of ONE photo; across different photos of a place it says nothing (scoring/sharpness.py).
Today's 64-bit difference hash finds dark and blurred copies, but not an enlarged corner of the
original, which is the copy that most often fools NIMA. So a candidate is also searched for inside
every other one: a coarse multi-scale normalized cross-correlation (NCC) on small greyscale
versions, refined at twice the size. NCC ignores brightness and contrast (a dark or washed-out
copy still matches) and the light blur both get before matching makes a blurred copy match too.
Cost: a few milliseconds per pair at the 500 px scoring size (FFT correlation of ~100 px images).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

from tests.scoring import hash_baseline

COARSE_WIDTH = 80  # the search runs on images this wide ...
FINE_WIDTH = 200  # ... and the best place is checked again at this width
# Crop sizes tried, as a share of the larger image's width (0.9^k from 1 down to ~0.25).
SCALES = tuple(round(0.9**k, 4) for k in range(14))
MIN_TEMPLATE = 12  # a crop smaller than this many coarse pixels is not searched for
# Same scene when the refined NCC reaches this (bench/near_duplicates.py: copies of one photo
# >= 0.89, crops of different photos up to 0.88, hence the structure check below for crops).
MATCH_NCC = 0.85
# A region covering at least this share of both sides is the same framing, not a crop.
FULL_FRAME = 0.9
ASPECT_TOLERANCE = 0.03  # width/height ratios this close may be the same framing
# A crop must also match in fine structure: the band-pass NCC at FINE_WIDTH (true crops
# >= 0.85, different photos whose smooth areas happen to correlate <= 0.65).
STRUCTURE_NCC = 0.7
BAND_SIGMA = 3.0


@dataclass(frozen=True)
class Region:
    """Where `inner` lies in `outer`: fractions of outer's width and height, and the NCC."""

    left: float
    top: float
    width: float
    height: float
    ncc: float

    @property
    def full_frame(self) -> bool:
        return self.width >= FULL_FRAME and self.height >= FULL_FRAME

    def box(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """The region in pixels of an image of `size` (outer's)."""
        w, h = size
        left, top = round(self.left * w), round(self.top * h)
        right = max(left + 1, min(w, round((self.left + self.width) * w)))
        bottom = max(top + 1, min(h, round((self.top + self.height) * h)))
        return left, top, right, bottom


@dataclass
class View:
    """What matching needs of one image, computed once per image."""

    size: tuple[int, int]
    coarse: np.ndarray
    fine: np.ndarray
    dhash: int
    _search: Searchable | None = field(default=None, repr=False)

    @property
    def search(self) -> Searchable:
        if self._search is None:
            self._search = Searchable(self.coarse)
        return self._search


def view(image: Image.Image) -> View:
    grey = image.convert("L")
    return View(grey.size, _small(grey, COARSE_WIDTH), _small(grey, FINE_WIDTH), _dhash(grey))


def _dhash(grey: Image.Image) -> int:
    return hash_baseline.difference_hash(grey)


def _small(grey: Image.Image, width: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """A small, lightly blurred grey version: blur and JPEG noise barely change it."""
    if size is None:
        size = (width, max(1, round(grey.height * width / grey.width)))
    small = grey.resize(size, Image.Resampling.BOX if grey.width > size[0] else Image.BILINEAR)
    small = small.filter(ImageFilter.GaussianBlur(1.0))
    return np.asarray(small, dtype=np.float64)


def locate(outer: View, inner: View, crops: bool = True) -> Region | None:
    """Where `inner` shows part (or all) of `outer`'s scene, or None when it does not
    (with crops=False, only the same framing is looked for)."""
    if min(*outer.size, *inner.size) < 8:
        return None
    whole = _same_framing(outer, inner)
    if whole is not None or not crops:
        return whole
    best = _coarse_search(outer, inner)
    if best is None:
        return None
    found = _refine(outer, inner, *best)
    if found is None or found.ncc < MATCH_NCC:
        return None
    if not found.full_frame and _structure_ncc(outer, inner, found) < STRUCTURE_NCC:
        return None  # smooth areas of different photos correlate; their fine structure does not
    return found


def _same_framing(outer: View, inner: View) -> Region | None:
    """Both show the whole scene (same aspect ratio): today's hash, or the NCC of the two."""
    aspect_outer = outer.size[0] / outer.size[1]
    aspect_inner = inner.size[0] / inner.size[1]
    if abs(aspect_outer / aspect_inner - 1) > ASPECT_TOLERANCE:
        return None
    h, w = outer.fine.shape
    resized = Image.fromarray(inner.fine.astype(np.float32)).resize((w, h), Image.BILINEAR)
    ncc = _ncc(outer.fine, np.asarray(resized, dtype=np.float64))
    if ncc >= MATCH_NCC or hash_baseline.same_scene(outer.dhash, inner.dhash):
        return Region(0.0, 0.0, 1.0, 1.0, ncc)
    return None


def _structure_ncc(outer: View, inner: View, region: Region) -> float:
    """NCC of the band-pass (fine detail minus a blurred copy) of the region and of `inner`."""
    left, top, right, bottom = region.box((outer.fine.shape[1], outer.fine.shape[0]))
    part = outer.fine[top:bottom, left:right]
    size = (part.shape[1], part.shape[0])
    template = Image.fromarray(inner.fine.astype(np.float32)).resize(size, Image.BILINEAR)
    template = np.asarray(template, dtype=np.float64)
    return _ncc(part - gaussian(part, BAND_SIGMA), template - gaussian(template, BAND_SIGMA))


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 1e-9 else 0.0


def gaussian(a: np.ndarray, sigma: float) -> np.ndarray:
    """A separable Gaussian blur with edge padding (numpy only)."""
    radius = max(1, int(3 * sigma + 0.5))
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-(x * x) / (2 * sigma * sigma))
    kernel /= kernel.sum()
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(a, pad, mode="edge")
        n = a.shape[axis]
        a = sum(k * np.take(padded, np.arange(i, i + n), axis=axis) for i, k in enumerate(kernel))
    return a


def _template_size(outer_width: int, inner: View, scale: float) -> tuple[int, int]:
    tw = max(1, round(scale * outer_width))
    th = max(1, round(tw * inner.size[1] / inner.size[0]))
    return tw, th


def _coarse_search(outer: View, inner: View) -> tuple[float, int, int] | None:
    """(scale, x, y) of the best NCC over every crop size and position, at COARSE_WIDTH."""
    grey = outer.coarse
    search = outer.search
    best: tuple[float, float, int, int] | None = None
    inner_img = Image.fromarray(inner.coarse.astype(np.float32))
    for scale in SCALES:
        tw, th = _template_size(grey.shape[1], inner, scale)
        if th > grey.shape[0] or tw > grey.shape[1] or min(tw, th) < MIN_TEMPLATE:
            continue
        template = np.asarray(inner_img.resize((tw, th), Image.BILINEAR), dtype=np.float64)
        scores = search.ncc(template)
        if scores is None:
            continue
        y, x = np.unravel_index(int(np.argmax(scores)), scores.shape)
        if best is None or scores[y, x] > best[0]:
            best = (float(scores[y, x]), scale, int(x), int(y))
    if best is None:
        return None
    return best[1], best[2], best[3]


def _refine(outer: View, inner: View, scale: float, x: int, y: int) -> Region | None:
    """The best NCC at FINE_WIDTH near the coarse hit, trying scales a few percent apart."""
    grey = outer.fine
    factor = grey.shape[1] / outer.coarse.shape[1]
    inner_img = Image.fromarray(inner.fine.astype(np.float32))
    found: Region | None = None
    for step in (0.95, 1.0, 1.05):
        s = min(1.0, scale * step)
        tw, th = _template_size(grey.shape[1], inner, s)
        if th > grey.shape[0] or tw > grey.shape[1]:
            continue
        template = np.asarray(inner_img.resize((tw, th), Image.BILINEAR), dtype=np.float64)
        # search +-margin fine pixels around the coarse position
        margin = round(2 * factor) + 2
        x0 = max(0, round(x * factor) - margin)
        y0 = max(0, round(y * factor) - margin)
        x1 = min(grey.shape[1], round(x * factor) + margin + tw)
        y1 = min(grey.shape[0], round(y * factor) + margin + th)
        scores = ncc_map(grey[y0:y1, x0:x1], template)
        if scores is None:
            continue
        py, px = np.unravel_index(int(np.argmax(scores)), scores.shape)
        ncc = float(scores[py, px])
        if found is None or ncc > found.ncc:
            h, w = grey.shape
            found = Region((x0 + px) / w, (y0 + py) / h, tw / w, th / h, ncc)
    return found


def ncc_map(image: np.ndarray, template: np.ndarray) -> np.ndarray | None:
    """Normalized cross-correlation of `template` at every position where it fits in `image`
    (valid positions only); None when the template is flat (nothing to match)."""
    return Searchable(image).ncc(template)


class Searchable:
    """An image prepared once for many NCC searches: its spectrum and integral images."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        h, w = image.shape
        # room for any template that fits (no wrap-around), in sizes the FFT is fast at
        self.shape = (_fast_length(2 * h), _fast_length(2 * w))
        self.spectrum = np.fft.rfft2(image, self.shape)
        self.sums = _integral(image)
        self.squares = _integral(image * image)

    def ncc(self, template: np.ndarray) -> np.ndarray | None:
        th, tw = template.shape
        h, w = self.image.shape
        if th > h or tw > w:
            return None
        t = template - template.mean()
        t_norm = np.sqrt((t * t).sum())
        if t_norm < 1e-6:
            return None
        corr = np.fft.irfft2(self.spectrum * np.conj(np.fft.rfft2(t, self.shape)), self.shape)
        corr = corr[: h - th + 1, : w - tw + 1]
        n = th * tw
        sums = _window(self.sums, th, tw)
        var = np.maximum(_window(self.squares, th, tw) - sums * sums / n, 0.0)
        # a flat window (sky) correlates with nothing
        return np.where(var > 0.25 * n, corr / np.maximum(np.sqrt(var) * t_norm, 1e-9), 0.0)


def _fast_length(n: int) -> int:
    """The smallest length >= n with no prime factor above 5."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _integral(a: np.ndarray) -> np.ndarray:
    return np.pad(a.cumsum(0).cumsum(1), ((1, 0), (1, 0)))


def _window(c: np.ndarray, th: int, tw: int) -> np.ndarray:
    """Sums over every th x tw window, from an integral image."""
    return c[th:, tw:] - c[:-th, tw:] - c[th:, :-tw] + c[:-th, :-tw]
