"""Throwaway PostgreSQL servers for the tests that must stop, restart or replicate one.

The embedded server's package ships the server binaries (initdb, pg_ctl, pg_basebackup);
a test that needs a server of its own runs them on a loopback port in a temporary
directory, as an unprivileged user when the tests run as root (the server refuses root),
so it never touches the shared server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pgserver
import pytest


def bin_dir() -> Path:
    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_user() -> str | None:
    """Whom to run a server as: None as a normal user; as root, the 'postgres' user
    (skips the test when there is none)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root with no 'postgres' system user to run a server as")
    return "postgres"


class Cluster:
    """One PostgreSQL data directory and its server on a loopback port."""

    def __init__(self, root: Path, name: str, user: str | None) -> None:
        self.data = root / name
        self.port = free_port()
        self.user = user

    def run(self, tool: str, *args: str) -> None:
        command = [str(bin_dir() / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def init(self, *conf_lines: str) -> None:
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                 "--encoding=utf8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("".join(f"{line}\n" for line in ("fsync = off", *conf_lines)))

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-w",
                 "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}", "start")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; ``immediate`` is a crash (recovery runs at the next start)."""
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"


@contextmanager
def scratch_root(prefix: str) -> Iterator[Path]:
    """A temporary directory the server user can write into, removed afterwards."""
    if not (bin_dir() / "pg_ctl").exists():
        pytest.skip("no PostgreSQL server binaries to start a server with")
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(root, 0o777)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
