"""Real NATS servers with JetStream for the tests: one node, or a 3-node cluster on loopback.

Each server is a ``nats-server`` process of the test's own (Debian's package), on free
ports, with its file store in the test's directory, so a test can scan what the stream
keeps on disk and SIGKILL a node. Tests that need it skip with a clear message where the
binary is missing (the README's setup installs it).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pg_cluster import free_port

from backend.config import Settings
from backend.services.ingest.stream_writer import StreamWriter

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def require_nats_server() -> str:
    """The binary's path, or skip: `make install` installs it (apt) where it can."""
    if not os.access(NATS_SERVER, os.X_OK):
        pytest.skip("nats-server is not installed (Debian: apt-get install nats-server; "
                    "`make e2e-deps` does it when run as root)")
    return NATS_SERVER


@dataclass
class Node:
    name: str
    port: int
    cluster_port: int
    store: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, routes: list[str] | None = None) -> None:
        args = [require_nats_server(), "-a", "127.0.0.1", "-p", str(self.port), "-js",
                "-sd", str(self.store), "-n", self.name]
        if routes is not None:
            args += ["--cluster_name", "wm", "--cluster",
                     f"nats://127.0.0.1:{self.cluster_port}", "--routes", ",".join(routes)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        _wait_port(self.port, self.log)

    def kill(self) -> None:
        """SIGKILL: what a lost machine does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


@dataclass
class Nats:
    """One server or a cluster; ``urls`` is what WAYMARK_QUEUE_URL gets."""

    nodes: list[Node] = field(default_factory=list)

    @property
    def urls(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def store_bytes(self) -> bytes:
        """Every file every node keeps on disk, concatenated (for the privacy scan)."""
        chunks = []
        for node in self.nodes:
            for path in sorted(node.store.rglob("*")):
                if path.is_file():
                    chunks.append(path.read_bytes())
        return b"".join(chunks)

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


@contextmanager
def nats_servers(root: Path, count: int = 1) -> Iterator[Nats]:
    """``count`` JetStream servers (a cluster when more than one), stopped at the end."""
    require_nats_server()
    nodes = [Node(f"wm-{i}", free_port(), free_port(), root / f"nats-{i}",
                  root / f"nats-{i}.log") for i in range(count)]
    nats = Nats(nodes)
    routes = [f"nats://127.0.0.1:{n.cluster_port}" for n in nodes] if count > 1 else None
    try:
        for node in nodes:
            node.start(routes)
        yield nats
    finally:
        nats.stop()


def _wait_port(port: int, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nats-server did not start: " + log.read_text()[-2000:])


class RunningWriter:
    """A ``StreamWriter`` on its own event loop thread, stopped (batch finished) on exit."""

    def __init__(self, db_url: str, settings: Settings) -> None:
        self.writer = StreamWriter(db_url, settings)
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self.writer.run(self._stop)
        asyncio.run(main())

    def __enter__(self) -> StreamWriter:
        self._thread.start()
        self._ready.wait(5)
        return self.writer

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)
