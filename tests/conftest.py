"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.fakes.commons_server"]

REPO_ROOT = Path(__file__).resolve().parent.parent
# The original city_wiki project's six city exports (not in this repository; a test skips
# without them).
CITY_EXPORTS_DIR = Path(
    os.environ.get("CITY_EXPORTS_DIR", REPO_ROOT.parent / "shared" / "data" / "city_exports")
)
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


@pytest.fixture(autouse=True)
def limiter_leases_end_with_their_test():
    """A lease or ticket still held when a test ends belongs to a thread the test left
    behind; its test database is gone, and the heartbeat renewing it would write into the
    next test's database (a "database table is locked" error in a later browser test). Say
    which test left it, and stop renewing it."""
    yield
    import warnings

    from image_ranking.commons.ratelimit.leases import keeper

    with keeper._lock:
        held = len(keeper._slots) + len(keeper._tickets)
        keeper._slots.clear()
        keeper._tickets.clear()
    if held:
        warnings.warn(f"{held} rate-limit lease(s) outlived the test", stacklevel=1)


def pytest_collection_modifyitems(config, items) -> None:
    """Tests that start clusters or worker processes run on one xdist worker, one after the
    other (`--dist loadgroup`): several at once would starve each other's timing on 2 cores."""
    for item in items:
        if item.get_closest_marker("processes"):
            item.add_marker(pytest.mark.xdist_group("processes"))
