"""Every browser test carries the `browser` marker, so `-m "not browser"` leaves out exactly
the tests that need Chromium: each module of tests/browser/ says so itself."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BROWSER_TESTS = Path(__file__).resolve().parents[1] / "browser"


def test_every_browser_test_module_is_marked_browser():
    modules = sorted(BROWSER_TESTS.glob("test_*.py"))
    assert len(modules) >= 7
    unmarked = []
    for path in modules:
        module = importlib.import_module(f"tests.browser.{path.stem}")
        marks = module.__dict__.get("pytestmark", [])
        marks = marks if isinstance(marks, list) else [marks]
        if pytest.mark.browser.mark not in [mark.mark for mark in marks]:
            unmarked.append(path.name)
    assert unmarked == []
