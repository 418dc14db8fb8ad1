"""The layers point down (README "Map of the code"), as import-linter checks them in CI: the
tree as it is keeps every contract, and an upward import breaks the build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("cities", "image_ranking", "workflow", "city_wiki")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def copy_of_the_code(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_code_keeps_every_contract():
    done = lint_imports(REPO_ROOT)
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("image_ranking/pipeline/flags.py", "from image_ranking.review import selectors"),
        ("image_ranking/models/ranking.py", "from image_ranking.pipeline import claims"),
        ("cities/models.py", "from image_ranking import models"),
        ("image_ranking/commons/answers.py", "from image_ranking.scoring import imaging"),
    ],
)
def test_an_upward_import_breaks_the_build(tmp_path, module, upward):
    root = copy_of_the_code(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{upward}  # noqa\n")
    done = lint_imports(root)
    assert done.returncode != 0 and "BROKEN" in done.stdout, done.stdout[-2000:]
