"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.fakes.commons_server"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / "shared"
DEMO_EXPORTS = sorted((REPO_ROOT / "cities" / "fixtures" / "demo").glob("*.json"))


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path) -> Path:
    """Every test writes images into its own temporary MEDIA_ROOT."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture(scope="session")
def nima_scorer():
    """The installed NIMA scorer (`make test` installs it first via `make model`)."""
    from image_ranking.scoring import ScoringModelMissing, get_scorer

    try:
        return get_scorer("nima")
    except ScoringModelMissing as exc:
        pytest.fail(str(exc))
