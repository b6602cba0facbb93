"""An S3-compatible server on loopback (moto's, from ``.venv-services``: ``make
service-deps``), for warehouse exports to ``s3://``: real HTTP, real S3 API, real uploads."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES_PYTHON = ROOT / ".venv-services" / "bin" / "python"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_s3() -> Iterator[str]:
    """moto's S3 server on a free port; yields its endpoint URL."""
    if not SERVICES_PYTHON.exists():
        pytest.skip("moto's S3 server is not installed: run `make service-deps`")
    port = _free_port()
    proc = subprocess.Popen([str(SERVICES_PYTHON), "-m", "moto.server", "-H", "127.0.0.1",
                             "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=2).close()
                break
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
