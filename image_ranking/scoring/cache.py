"""The on-disk model cache: files plus a manifest of their SHA-256, written atomically.

A model directory is valid only when its manifest exists and every file it lists has the
recorded checksum. Files are staged next to the cache and moved in with `os.replace`, the
manifest last, so an interrupted install never leaves a half-written file that looks valid.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .sources import sha256_file

MANIFEST = "manifest.json"


def read_manifest(directory: Path) -> dict | None:
    try:
        return json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def problems(directory: Path, *, verify_large: bool = True) -> list[str]:
    """Why the cache in `directory` is not usable (empty list = valid).

    `verify_large=False` checks files over 100 MB by size only (hashing a 1.2 GB encoder
    on every process start would cost seconds).
    """
    manifest = read_manifest(directory)
    if manifest is None:
        return [f"{directory / MANIFEST} missing or unreadable"]
    found = []
    for name, meta in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            found.append(f"{path} missing")
        elif path.stat().st_size != meta["size"]:
            found.append(f"{path} has {path.stat().st_size} bytes, expected {meta['size']}")
        elif (verify_large or meta["size"] < 100_000_000) and sha256_file(path) != meta["sha256"]:
            found.append(f"{path} does not match its recorded SHA-256 (corrupt cache)")
    return found


class Staging:
    """A temporary directory next to the cache; `commit` moves files in, manifest last."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def commit(self, names: list[str], extra: dict) -> dict:
        files = {
            name: {
                "sha256": sha256_file(self.path / name),
                "size": (self.path / name).stat().st_size,
            }
            for name in names
        }
        manifest = {"files": files, **extra}
        (self.path / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        self.directory.mkdir(parents=True, exist_ok=True)
        # Invalidate first: a crash after this leaves "manifest missing", never a wrong manifest.
        (self.directory / MANIFEST).unlink(missing_ok=True)
        for name in names:
            os.replace(self.path / name, self.directory / name)
        os.replace(self.path / MANIFEST, self.directory / MANIFEST)
        return manifest
