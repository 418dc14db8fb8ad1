"""Technical quality among near-duplicates: which candidate is a damaged copy of a better one.

Why: NIMA judges beauty on a 224x224 downscale. There a dark, washed-out, hazy or blurred copy
of a photo, or a corner of it blown up to full size, can score as well as the photo itself (a
dark copy beat its original 4.83 to 4.79). A curator picks the least damaged shot among
near-duplicates. So candidates showing the same scene (scenes.match: the same framing, or one a
crop of the other, turned or not) are compared on what differs between versions of ONE photo:
  exposure   a copy whose tones are squeezed toward black (dark) or whose blacks are lifted
             or highlights blown (washed-out), or whose tonal range shrank (low-contrast);
  sharpness  the Laplacian-variance ratio at a common scale, as the blur check always did;
  resolution an enlarged crop has more pixels than its source had for its view (the files'
             widths), or no more real detail than the original's region upscaled.
Each is measured on the same part of the scene (the crop's region in the other image, turned
upright), so a crop of a dark corner is not "dark". A copy is damaged only when the other is
worse in none of these, so the original, and any photo not a copy of another, is never marked.
Different photos of a place are never compared: NIMA alone ranks them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from image_ranking.scoring import scene_features, scenes, sharpness

PENALTY = 1.0  # NIMA points taken off a damaged copy when ranking, like the blur check's
# Exposure, on luminance 0..1 of the same part of the scene (p5/p95 = 5th/95th percentile):
# (copy = gain * other + offset, fitted on the 5th and 95th percentiles; see _tone_faults)
DARK_GAIN = 0.7  # dark: tones scaled down to under this share,
LIFT = 0.05  # ... blacks not lifted beyond that (else it is a veil, not darkness),
DARK_MEAN = 0.65  # ... and the mean under this share of the other's
WASHED_MEAN = 0.08  # washed-out: brighter by this much on average, and
WASHED_BLACKS = 0.1  # ... blacks lifted by this much beyond the scaling, or
WASHED_CLIPPED = 0.08  # ... this much more of the picture blown to white
CLIP_LEVEL = 0.98
FLAT_RANGE = 0.6  # low-contrast: tonal range under this share, with blacks lifted
# With the files' full sizes known (Commons' width), a crop whose file is this many times wider
# than its view's width in the other file is enlarged: it has more pixels than its source had.
ENLARGED_FILE = 1.08
ENLARGED = 1.4  # Else: an inner copy with this many more pixels than its region in the other is
# ... an enlarged crop when the detail above the region's resolution is under this share of
# the region's own top octave, per octave (measured on the test set: enlarged crops <= 0.28,
# full-resolution close-ups >= 0.38: a thin margin), or under NOISE_FLOOR (squared 8-bit
# levels: JPEG and quantization noise).
DETAIL_SHARE = 0.33
NOISE_FLOOR = 1.5
MIN_SIDE = 16  # images smaller than this are not assessed
# The checks, and which check finds each kind ("crops": also compare a crop with its original)
PARTS = frozenset({"exposure", "contrast", "sharpness", "resolution", "crops"})
PART_OF = {
    "dark": "exposure",
    "washed-out": "exposure",
    "low-contrast": "contrast",
    "blurred": "sharpness",
    "enlarged crop": "resolution",
}
# The order reasons name kinds in when a copy has several faults: the plainest first.
KINDS = ("enlarged crop", "blurred", "dark", "washed-out", "low-contrast")


@dataclass(frozen=True)
class Damage:
    """A candidate is a damaged copy of candidate `copy_of` (an index into the batch)."""

    copy_of: int
    kind: str  # one of KINDS: the main fault
    penalty: float
    also: tuple[str, ...] = ()  # its other faults
    turn: float = 0.0  # degrees this copy is turned against the better one

    def reason(self, title: str) -> str:
        """What the curator reads, naming the better copy: 'dark copy of File:X.jpg',
        'enlarged crop of File:X.jpg, turned 6°'."""
        said = f"enlarged crop of {title}" if self.kind == "enlarged crop" else None
        said = said or f"{self.kind} copy of {title}"
        degrees = round(abs(self.turn))
        return f"{said}, turned {degrees}°" if degrees >= 1 else said


@dataclass
class _Image:
    """One candidate's luminance (0..1) and its scene features, computed once."""

    grey: np.ndarray
    features: scene_features.Features
    file_width: int | None  # the file's full width, when known


def assess_copies(
    images: list[Image.Image],
    parts: frozenset[str] = PARTS,
    features: list[scene_features.Features] | None = None,
    file_widths: list[int | None] | None = None,
) -> list[Damage | None]:
    """For each image (a POI's decoded candidates, in order), the better copy of the same
    scene it is a damaged version of, or None: the best of its copies, or no copy at all.
    `features` are the images' scene_features.features when the caller has them already (computed
    here otherwise). `file_widths` are the files' full widths (Commons' `width`) when known:
    a crop is then an enlarged crop when its file is wider than its view is in the other file;
    without them, when its pixels carry no detail beyond the other's (renditions hide an
    enlargement below their own size). `parts` leaves checks out, for the bench to measure."""
    if features is None:
        features = [scene_features.features(i) for i in images]
    widths = file_widths or [None] * len(images)
    prepared = [_prepare(*item) for item in zip(images, features, widths, strict=True)]
    n = len(images)
    faults: dict[tuple[int, int], list[str]] = {}
    turns: dict[tuple[int, int], float] = {}
    for i in range(n):
        for j in range(i + 1, n):
            if prepared[i] is None or prepared[j] is None:
                continue
            pair = _compare(prepared[i], prepared[j], parts)
            if pair is not None:
                faults[i, j], faults[j, i], turns[i, j] = pair
                turns[j, i] = -turns[i, j]
    # j dominates i: i is worse in something, j in nothing
    beaten_by = {
        i: [j for j in range(n) if faults.get((i, j)) and not faults.get((j, i))] for i in range(n)
    }
    out: list[Damage | None] = []
    for i in range(n):
        if not beaten_by[i]:
            out.append(None)
            continue
        # the best copy: one nobody beats, then the one it is most clearly worse than
        j = min(beaten_by[i], key=lambda j: (bool(beaten_by[j]), -len(faults[i, j]), j))
        kinds = sorted(faults[i, j], key=KINDS.index)
        out.append(Damage(j, kinds[0], PENALTY, tuple(kinds[1:]), turns[i, j]))
    return out


def ranking_score(score: float, damage: Damage | None) -> float:
    """The score used to pick the winner: NIMA's, minus the penalty for a damaged copy."""
    return score if damage is None else score - damage.penalty


def ranking_scores(scores: list[float], damages: list[Damage | None]) -> list[float]:
    """ranking_score for a batch, and a damaged copy also ranks just below the copy it is
    damaged against, however much NIMA prefers it: the curator's pick among copies."""
    ranked = [ranking_score(s, d) for s, d in zip(scores, damages, strict=True)]
    for i, damage in enumerate(damages):
        if damage is not None:
            ranked[i] = min(ranked[i], ranked[damage.copy_of] - 0.01)
    return ranked


def _prepare(
    image: Image.Image, features: scene_features.Features, file_width: int | None
) -> _Image | None:
    if min(image.size) < MIN_SIDE:
        return None
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    return _Image(grey, features, file_width)


def _compare(
    a: _Image, b: _Image, parts: frozenset[str]
) -> tuple[list[str], list[str], float] | None:
    """(faults of a against b, faults of b against a, a's turn against b) when they show
    the same scene."""
    found = scenes.match(a.features, b.features)
    if found is None or not (found.full_frame or "crops" in parts):
        return None
    outer, inner = (a, b) if found.inner == 1 else (b, a)
    inner_faults, outer_faults = _judge(outer, inner, found)
    a_faults, b_faults = (
        (outer_faults, inner_faults) if found.inner == 1 else (inner_faults, outer_faults)
    )
    a_turn = found.turn if found.inner == 0 else -found.turn
    return (
        [f for f in a_faults if PART_OF[f] in parts],
        [f for f in b_faults if PART_OF[f] in parts],
        a_turn,
    )


def _judge(outer: _Image, inner: _Image, found: scenes.SceneMatch) -> tuple[list[str], list[str]]:
    """(faults of inner, faults of outer), `inner` showing the view `found` places in `outer`."""
    part = found.part_of_outer(outer.grey, inner.grey.shape)
    inner_faults = _tone_faults(part, inner.grey)
    outer_faults = _tone_faults(inner.grey, part)
    sharp_part, sharp_inner = _at_common_scale(part, inner.grey)
    if sharp_inner < sharpness.BLUR_RATIO * sharp_part:
        inner_faults.append("blurred")
    if sharp_part < sharpness.BLUR_RATIO * sharp_inner:
        outer_faults.append("blurred")
    if not found.full_frame and _enlarged(outer, inner, found.share, part):
        inner_faults.append("enlarged crop")
    return inner_faults, outer_faults


def _tone_faults(reference: np.ndarray, copy: np.ndarray) -> list[str]:
    """How `copy`'s exposure is worse than `reference`'s (same scene, any sizes).

    The copy's tones are read as a linear map of the reference's, fitted on the 5th and 95th
    percentiles: copy = gain * reference + offset. Darkening scales toward black (gain < 1,
    no offset); a veil of flare, haze or overexposure lifts the blacks (offset > 0); blown
    highlights pile up at white. The reverse maps (gain > 1, offset < 0) are no fault."""
    ref, own = _tones(reference), _tones(copy)
    gain = (own.high - own.low) / max(ref.high - ref.low, 1e-3)
    offset = own.low - gain * ref.low
    if gain < DARK_GAIN and offset < LIFT and own.mean < DARK_MEAN * ref.mean:
        return ["dark"]
    brighter = own.mean > ref.mean + WASHED_MEAN
    if brighter and (offset > WASHED_BLACKS or own.clipped > ref.clipped + WASHED_CLIPPED):
        return ["washed-out"]
    if gain < FLAT_RANGE and offset > LIFT:
        return ["low-contrast"]
    return []


@dataclass(frozen=True)
class _Tones:
    low: float  # 5th percentile of luminance
    high: float  # 95th percentile
    mean: float
    clipped: float  # share at or above CLIP_LEVEL


def _tones(grey: np.ndarray) -> _Tones:
    step = max(1, int(np.sqrt(grey.size / 40_000)))  # a subsample is plenty for percentiles
    values = grey[::step, ::step]
    low, high = np.percentile(values, [5, 95])
    return _Tones(
        float(low), float(high), float(values.mean()), float((values >= CLIP_LEVEL).mean())
    )


def _at_common_scale(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Laplacian variance of both at the smaller one's width (at most MEASURE_WIDTH), in b's
    aspect ratio, so that neither gains detail from having more pixels."""
    width = min(a.shape[1], b.shape[1], sharpness.MEASURE_WIDTH)
    height = max(1, round(b.shape[0] * width / b.shape[1]))
    return _laplacian(_resize(a, (width, height))), _laplacian(_resize(b, (width, height)))


def _enlarged(outer: _Image, inner: _Image, share: float, part: np.ndarray) -> bool:
    """Does the crop `inner` have fewer real pixels than its own size: by the files' widths
    when both are known, else by the detail its rendition lacks."""
    if outer.file_width and inner.file_width:
        return inner.file_width >= ENLARGED_FILE * share * outer.file_width
    return _enlarged_without_detail(part, inner.grey)


def _enlarged_without_detail(part: np.ndarray, inner: np.ndarray) -> bool:
    """Is `inner` an enlargement of `part` (the same view with fewer real pixels) whose extra
    pixels carry no real detail?

    Natural photos have about as much detail energy in every octave of scale. So the energy
    `inner` has above `part`'s resolution (up to one octave) is set against the energy `part`
    has in its own top octave: measured, real close-ups keep 0.38-0.50 of it, enlarged crops
    0.06-0.28 (interpolation has nothing to add). Energy under NOISE_FLOOR is no detail at all
    (a night sky's corner, enlarged, keeps 0.92 of almost nothing)."""
    part_width = part.shape[1]
    width = min(inner.shape[1], 2 * part_width)
    if width < ENLARGED * part_width or part_width < 2 * MIN_SIDE:
        return False  # a crop at about the original's resolution: a framing choice
    height = max(1, round(inner.shape[0] * width / inner.shape[1]))
    inner = _resize(inner, (width, height), Image.Resampling.LANCZOS)  # keeps its detail
    inner_band = _band_energy(inner, part_width)
    if inner_band < NOISE_FLOOR:
        return True
    own_band = _band_energy(part, part_width // 2)
    exposure = (inner.std() / max(float(part.std()), 1e-6)) ** 2
    octaves = float(np.log2(width / part_width))
    return inner_band < DETAIL_SHARE * octaves * exposure * own_band


def _band_energy(grey: np.ndarray, width: int) -> float:
    """Mean squared detail (in 8-bit levels) that `grey` loses when shrunk to `width`."""
    size = (width, max(1, round(grey.shape[0] * width / grey.shape[1])))
    small = _resize(grey, size, Image.Resampling.BOX)
    back = _resize(small, (grey.shape[1], grey.shape[0]), Image.Resampling.BICUBIC)
    return float(((grey - back) * 255.0).var())


def _resize(
    grey: np.ndarray,
    size: tuple[int, int],
    method: Image.Resampling = Image.Resampling.BILINEAR,
) -> np.ndarray:
    if (grey.shape[1], grey.shape[0]) == size:
        return grey
    image = Image.fromarray(grey.astype(np.float32))
    return np.asarray(image.resize(size, method), dtype=np.float32)


def _laplacian(pixels: np.ndarray) -> float:
    """sharpness.laplacian_ratio on a 0..1 array, at its own size."""
    return sharpness.laplacian_ratio(pixels * 255.0)
