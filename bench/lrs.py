"""A real learning record store on loopback, for the xAPI tests and bench: Ralph with its
file-system backend.

Ralph lives in its own virtualenv (``.venv-services``: ``make service-deps``; its dependencies must
not mix with Waymark's). :func:`running_lrs` starts it on a free port with one basic-auth
user and stops it afterwards; without it, :class:`LrsUnavailable` says how to install it.
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class LrsUnavailable(RuntimeError):
    """Ralph is not installed here."""


RALPH_PYTHON = ROOT / ".venv-services" / "bin" / "python"
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
def running_lrs(tmp: Path) -> Iterator[RunningLrs]:
    """Ralph on a free loopback port, storing in ``tmp``."""
    if not RALPH_PYTHON.exists():
        raise LrsUnavailable("Ralph (the local LRS) is not installed: run `make service-deps`")
    data = tmp / "lrs-data"
    data.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RALPH_RUNSERVER_BACKEND": "fs", "RALPH_APP_DIR": str(tmp / "ralph"),
           "RALPH_AUTH_FILE": str(tmp / "ralph-auth.json"),
           "RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH": str(data)}
    subprocess.run([str(RALPH_PYTHON), "-m", "ralph", "auth", "-u", USER, "-p", PASSWORD,
                    "-s", "all", "-M", "mailto:waymark-tests@example.org", "-w"],
                   env=env, check=True, capture_output=True, timeout=120)
    port = _free_port()
    log = (tmp / "ralph.log").open("wb")
    proc = subprocess.Popen([str(RALPH_PYTHON), str(LAUNCHER), str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    lrs = RunningLrs(f"http://127.0.0.1:{port}/xAPI",
                     "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(), data)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                lrs.get("/statements?limit=1")
                break
            except (OSError, urllib.error.URLError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Ralph did not start: " + (tmp / "ralph.log")
                                       .read_text()[-2000:]) from None
                time.sleep(0.2)
        yield lrs
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
