"""Local stand-ins for outside services, real programs on loopback, for tests and benches:
Ralph, a learning record store (file-system backend), and moto's S3-compatible server.

They live in their own virtualenv (``.venv-services``: ``make service-deps``; their
dependencies must not mix with Waymark's). Each ``running_…`` starts one on a free port
and stops it afterwards; without the virtualenv, :class:`StandInUnavailable` says how to
install it.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class StandInUnavailable(RuntimeError):
    """The stand-ins' virtualenv is not installed here."""


SERVICES_PYTHON = ROOT / ".venv-services" / "bin" / "python"
LAUNCHER = Path(__file__).resolve().parent / "ralph_server.py"
USER, PASSWORD = "waymark", "lrs-test-secret"


@dataclass
class RunningLrs:
    endpoint: str  # the xAPI base: …/xAPI
    authorization: str
    data_dir: Path

    def get(self, path_and_query: str) -> Any:
        request = urllib.request.Request(  # noqa: S310 (loopback http)
            self.endpoint + path_and_query,
            headers={"X-Experience-API-Version": "1.0.3", "Authorization": self.authorization})
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return json.loads(answer.read())

    def statements_of(self, agent: dict[str, Any]) -> list[dict[str, Any]]:
        """Everything the LRS answers for ``agent`` (following ``more``)."""
        found: list[dict[str, Any]] = []
        query = urllib.parse.urlencode({"agent": json.dumps(agent), "limit": 500})
        path: str | None = f"/statements?{query}"
        while path:
            answer = self.get(path)
            found.extend(answer["statements"])
            more = answer.get("more")
            path = more.split("/xAPI", 1)[1] if more else None
        return found

    def stored(self) -> list[dict[str, Any]]:
        """Every statement in the LRS's file, as Ralph wrote it."""
        lines: list[dict[str, Any]] = []
        for file in self.data_dir.glob("*"):
            lines.extend(json.loads(line) for line in file.read_text().splitlines() if line)
        return lines


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _process(argv: list[str], env: dict[str, str], log_path: Path, what: str,
             ready: Callable[[], object]) -> Iterator[None]:
    """``argv`` running until the block ends; ``ready`` is called until it stops raising
    OSError (60 s at most, or the process dies: the log's tail says why)."""
    if not SERVICES_PYTHON.exists():
        raise StandInUnavailable(f"{what} is not installed: run `make service-deps`")
    log = log_path.open("wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                ready()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{what} did not start: "
                                       + log_path.read_text()[-2000:]) from None
                time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def running_lrs(tmp: Path) -> Iterator[RunningLrs]:
    """Ralph on a free loopback port, storing in ``tmp``."""
    if not SERVICES_PYTHON.exists():
        raise StandInUnavailable("Ralph (the local LRS) is not installed: run `make service-deps`")
    data = tmp / "lrs-data"
    data.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RALPH_RUNSERVER_BACKEND": "fs", "RALPH_APP_DIR": str(tmp / "ralph"),
           "RALPH_AUTH_FILE": str(tmp / "ralph-auth.json"),
           "RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH": str(data)}
    subprocess.run([str(SERVICES_PYTHON), "-m", "ralph", "auth", "-u", USER, "-p", PASSWORD,
                    "-s", "all", "-M", "mailto:waymark-tests@example.org", "-w"],
                   env=env, check=True, capture_output=True, timeout=120)
    port = _free_port()
    lrs = RunningLrs(f"http://127.0.0.1:{port}/xAPI",
                     "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(), data)
    with _process([str(SERVICES_PYTHON), str(LAUNCHER), str(port)], env, tmp / "ralph.log",
                  "Ralph", lambda: lrs.get("/statements?limit=1")):
        yield lrs


@contextmanager
def running_s3(tmp: Path) -> Iterator[str]:
    """moto's S3-compatible server on a free loopback port; yields its endpoint URL."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"

    def answers() -> None:
        try:
            urllib.request.urlopen(endpoint, timeout=2).close()
        except urllib.error.HTTPError:
            pass  # an S3 error document is an answer

    with _process([str(SERVICES_PYTHON), "-m", "moto.server", "-H", "127.0.0.1", "-p",
                   str(port)], dict(os.environ), tmp / "moto.log", "moto's S3 server",
                  answers):
        yield endpoint
