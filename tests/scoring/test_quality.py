"""Technical quality among near-duplicates, on real photos: each dark, washed-out, hazy,
blurred copy and enlarged crop is named as a damaged copy of its original and ranks below it
with NIMA's real scores, while the original and different photos of a place never are."""

from __future__ import annotations

import time
from itertools import combinations

import pytest

from image_ranking.scoring import quality
from tests.scoring.quality_set import DAMAGES, other_views, photo_names, version

NAMES = photo_names()


def candidates(name: str) -> list:
    """A POI: the photo, its damaged copies, and two different photos of the set."""
    others = [n for n in NAMES if n != name][:2]
    return (
        [version(name)]
        + [version(name, kind) for kind in DAMAGES]
        + [version(other) for other in others]
    )


@pytest.mark.parametrize("name", NAMES)
def test_every_damaged_copy_is_named_against_its_original(name):
    damages = quality.assess_copies(candidates(name))
    assert damages[0] is None, "the original is never damaged"
    assert damages[-2:] == [None, None], "different photos are never damaged"
    for damage, (kind, expected) in zip(damages[1:-2], DAMAGES.items(), strict=True):
        assert damage is not None, kind
        assert damage.copy_of == 0, kind
        assert damage.kind in expected, (kind, damage)


@pytest.mark.parametrize("name", NAMES)
def test_every_damaged_copy_ranks_below_its_original_with_nima(name, nima_scorer):
    images = candidates(name)
    scores = [r.score for r in nima_scorer.score(images)]
    damages = quality.assess_copies(images)
    ranked = [quality.ranking_score(s, d) for s, d in zip(scores, damages, strict=True)]
    assert ranked[0] == scores[0]
    for kind, rank in zip(DAMAGES, ranked[1:-2], strict=True):
        assert rank < ranked[0], (kind, rank, ranked[0])
    assert ranked[-2:] == scores[-2:]


def test_ranking_scores_keep_a_damaged_copy_below_its_better_copy():
    damage = quality.Damage(copy_of=0, kind="dark", penalty=quality.PENALTY)
    # NIMA liking a dark copy 2 points more still leaves it under its original
    assert quality.ranking_scores([4.0, 7.0, 5.0], [None, damage, None]) == [4.0, 3.99, 5.0]
    assert quality.ranking_score(5.0, damage) == 5.0 - quality.PENALTY
    assert quality.ranking_score(5.0, None) == 5.0


def test_different_photos_are_never_damaged():
    originals = [version(n) for n in NAMES]
    assert quality.assess_copies(originals) == [None] * len(originals)


@pytest.mark.parametrize("shots", list(other_views().items()), ids=lambda item: item[0])
def test_other_photos_of_one_scene_are_never_damaged(shots):
    """A step aside (stereo pair) or a real close-up (full-resolution detail) is no copy."""
    _, images = shots
    assert quality.assess_copies(images) == [None] * len(images)


def test_pairs_of_different_photos_never_match_even_damaged():
    for a, b in combinations(NAMES[:7], 2):
        for kind in ("original", "blur", "crop", "haze"):
            assert quality.assess_copies([version(a), version(b, kind)]) == [None, None]


def test_the_reason_names_the_kind_and_the_better_copy():
    dark = quality.Damage(copy_of=0, kind="dark", penalty=1.0)
    crop = quality.Damage(copy_of=0, kind="enlarged crop", penalty=1.0)
    assert dark.reason("File:X.jpg") == "dark copy of File:X.jpg"
    assert crop.reason("File:X.jpg") == "enlarged crop of File:X.jpg"


def test_a_copy_worse_than_another_damaged_copy_names_the_best_one():
    images = [version("coffee", "blur"), version("coffee", "dark"), version("coffee")]
    damages = quality.assess_copies(images)
    assert [d.copy_of if d else None for d in damages] == [2, 2, None]


def test_copies_without_their_original_are_left_to_nima():
    """A dark copy and a blurred one: each is worse in something, neither is the better."""
    images = [version("chelsea", "blur"), version("chelsea", "dark")]
    assert quality.assess_copies(images) == [None, None]


def test_a_lone_or_tiny_image_is_never_damaged():
    tiny = version("coffee").resize((8, 8))
    assert quality.assess_copies([]) == []
    assert quality.assess_copies([version("coffee", "dark")]) == [None]
    assert quality.assess_copies([tiny, tiny.resize((10, 10))]) == [None, None]


def test_a_pair_costs_milliseconds():
    """Ten candidates make 45 pairs: the check must stay well under NIMA's own time."""
    images = [version(n) for n in NAMES[:5]] + [version("coffee", k) for k in DAMAGES]
    quality.assess_copies(images[:2])  # warm-up
    start = time.perf_counter()
    quality.assess_copies(images)
    pairs = len(images) * (len(images) - 1) / 2
    assert (time.perf_counter() - start) / pairs < 0.06
