"""What the fault drills share: `waymark serve` in its own process group, client threads
that record every event id answered 202, and the count of each id in the table."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from pg_cluster import Cluster, free_port, scratch_root, server_user

from backend import migrations

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"


@contextmanager
def own_postgres(prefix: str) -> Iterator[Cluster]:
    """A PostgreSQL of the drill's own (so it can be crashed), with a migrated ``drill``
    database."""
    with scratch_root(prefix) as root:
        cluster = Cluster(root, "data", server_user())
        try:
            cluster.init()
            cluster.start()
            with psycopg.connect(cluster.url(), autocommit=True) as conn:
                conn.execute("CREATE DATABASE drill")
            migrations.migrate(cluster.url("drill"))
            yield cluster
        finally:
            cluster.stop()


@contextmanager
def serving(db_url: str, port: int, log: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """`waymark serve` in its own process group, healthy; killed (SIGKILL) at the end."""
    waymark = Path(sys.executable).with_name("waymark")
    environ = {**os.environ, "DATABASE_URL": db_url, "WAYMARK_JWT_SECRET": "x" * 40,
               "WAYMARK_FLUSH_INTERVAL": "1", **env}
    with log.open("ab") as out:
        proc = subprocess.Popen([str(waymark), "serve", "--port", str(port), "--workers", "2",
                                 "--threads", "4", "--no-access-log"], stdout=out,
                                stderr=subprocess.STDOUT, env=environ, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/api/analytics/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("waymark serve did not come up: " + log.read_text()[-2000:])
        yield proc
    finally:
        kill(proc)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server and its workers at once (what an OOM kill of the group does)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


class Load:
    """Client threads posting batches; ``acked`` holds every event id answered 202."""

    def __init__(self, port: int, threads: int = 4) -> None:
        self.port = port
        self.acked: set[str] = set()
        self.answers: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._post, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _post(self) -> None:
        while not self._stop.is_set():
            ids = [str(uuid.uuid4()) for _ in range(10)]
            body = json.dumps({"events": [{"event_type": "page_view", "event_id": i,
                                           "page_path": "/drill"} for i in ids]})
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("POST", "/api/analytics/activity/batch", body=body,
                             headers={"Content-Type": "application/json", "User-Agent": UA})
                status = conn.getresponse().status
            except OSError:
                time.sleep(0.05)  # the server is down: a real client keeps the events
                continue
            with self._lock:
                self.answers[status] = self.answers.get(status, 0) + 1
                if status == 202:
                    self.acked.update(ids)


def stored(db_url: str, ids: set[str]) -> dict[str, int]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT event_id::text, count(*) FROM user_activity_events "
                            "WHERE event_id = ANY (%s::uuid[]) GROUP BY 1",
                            (list(ids),)).fetchall()
    return {row[0]: int(row[1]) for row in rows}


__all__ = ["UA", "Load", "free_port", "kill", "own_postgres", "serving", "stored"]
