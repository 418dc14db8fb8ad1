"""Fixtures for the scorer tests: the verified NIMA weights and a tiny file server on 127.0.0.1."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from image_ranking.scoring import registry

REPO_ROOT = Path(__file__).resolve().parents[2]
# The LAION aesthetic head's checkpoint (not in this repository; its tests skip without it).
LAION_HEAD = Path(
    os.environ.get(
        "LAION_HEAD_FILE",
        REPO_ROOT.parent / "shared" / "data" / "models" / "sac+logos+ava1-l14-linearMSE.pth",
    )
)


@pytest.fixture(scope="session")
def nima_weights(nima_scorer) -> Path:
    """The original HDF5 that the installer verified and kept next to nima.onnx."""
    return (
        Path(django_settings.SCORING_MODEL_DIR) / "nima" / "weights_mobilenet_aesthetic_0.07.hdf5"
    )


@pytest.fixture
def fresh_registry():
    """Tests that install into their own SCORING_MODEL_DIR must not see a cached scorer."""
    registry.reset()
    yield
    registry.reset()


class FileServer:
    """Serves `files[path] = bytes` (or an int status) on 127.0.0.1 and logs the paths asked."""

    def __init__(self) -> None:
        self.files: dict[str, bytes | int] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                body = outer.files.get(self.path, 404)
                if isinstance(body, int):
                    self.send_response(body)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server():
    server = FileServer()
    yield server
    server.close()
