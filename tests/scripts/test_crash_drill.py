"""The crash drill: SIGKILL `waymark serve` under load, restart it, and every event that was
answered 202 is in the table exactly once (WAYMARK_ACK=commit, the default).

What a SIGKILL does is what an OOM kill, a crashed host or a hard eviction does: no atexit,
no flush. Client threads post batches of 10 events with their own ids (as the hook does)
and record the ids of every batch answered 202; the server's whole process group is killed
at a random moment, restarted, and the table is compared with the record. With
``WAYMARK_ACK=queued`` the same drill loses events (shown once, as the control).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def drill(db_url: str, tmp_path: Path, *, kills: int, **env: str) -> tuple[set[str], dict[str, int],
                                                                              dict[int, int]]:
    """Run load across ``kills`` SIGKILLs at random moments; return acked ids, what is stored."""
    port = _free_port()
    rng = random.Random()
    with Load(port) as load:
        for _ in range(kills):
            with serving(db_url, port, tmp_path / "serve.log", **env):
                time.sleep(rng.uniform(1.0, 2.5))  # the context's exit is the SIGKILL
        with serving(db_url, port, tmp_path / "serve.log", **env):
            time.sleep(1.0)  # the last server is also killed: only what was acked counts
    return load.acked, stored(db_url, load.acked), load.answers


def test_every_event_answered_202_survives_sigkill(db_url: str, tmp_path: Path) -> None:
    acked, rows, answers = drill(db_url, tmp_path, kills=2)
    print(f"crash drill: {len(acked)} events answered 202, answers {answers}")
    assert len(acked) >= 200, answers  # the load really ran across the kills
    lost = acked - set(rows)
    duplicated = {i for i, n in rows.items() if n != 1}
    assert (len(lost), len(duplicated)) == (0, 0), (len(acked), len(lost), answers)


@pytest.mark.skipif(os.environ.get("WAYMARK_DRILL_CONTROL") != "1",
                    reason="the queued-ack control is run by hand: WAYMARK_DRILL_CONTROL=1")
def test_control_queued_ack_loses_events_under_sigkill(db_url: str, tmp_path: Path) -> None:
    acked, rows, answers = drill(db_url, tmp_path, kills=2, WAYMARK_ACK="queued")
    assert len(acked - set(rows)) > 0, (len(acked), answers)
