"""Slow uploads: a body must arrive within WAYMARK_BODY_READ_TIMEOUT or the request is 408.

A handful of clients sending a chunked body one byte a second used to hold every gunicorn
thread for as long as they liked, and ``/health`` waited behind them (issue #19, item 9).
"""

from __future__ import annotations

import http.client
import io
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from backend import request_body as body

BOUND = 2.0  # WAYMARK_BODY_READ_TIMEOUT of the served process
THREADS = 2
SLOW_CLIENTS = THREADS + 1  # every thread taken, and one more waiting for a thread
SENDING_FOR = 12.0  # how long a slow client keeps trickling if nobody stops it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def health(port: int, timeout: float) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/api/analytics/health")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@dataclass
class SlowUpload:
    """One client that sends a chunked event one byte a second and notes how it ended."""

    port: int
    chunked: bool
    started: float = 0.0
    ended: float | None = None  # when the server closed the connection
    answer: bytes = b""
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        self.started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            payload = io.BytesIO(b'{"event_type": "page_view", "page_path": "/slow"}' * 4)
            framing = b"Transfer-Encoding: chunked" if self.chunked else \
                b"Content-Length: %d" % len(payload.getvalue())
            sock.sendall(b"POST /api/analytics/activity/track HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\n" + framing + b"\r\n\r\n")
            next_byte = self.started
            while time.monotonic() - self.started < SENDING_FOR:
                if select.select([sock], [], [], 0.05)[0]:
                    try:
                        data = sock.recv(4096)
                    except OSError as exc:  # a reset after the answer: closed all the same
                        self.errors.append(repr(exc))
                        data = b""
                    self.answer += data
                    if not data:
                        self.ended = time.monotonic()
                        return
                if time.monotonic() >= next_byte:
                    next_byte += 1.0
                    try:
                        byte = payload.read(1)
                        sock.sendall(b"1\r\n" + byte + b"\r\n" if self.chunked else byte)
                    except OSError as exc:
                        self.errors.append(repr(exc))


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_slow_uploads_get_408_and_leave_health_answering(db_url: str, tmp_path: Path,
                                                         chunked: bool) -> None:
    port = free_port()
    waymark = Path(sys.executable).with_name("waymark")
    env = {**os.environ, "DATABASE_URL": db_url, "WAYMARK_JWT_SECRET": "x" * 40,
           "WAYMARK_BODY_READ_TIMEOUT": str(BOUND)}
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(waymark), "serve", "--port", str(port), "--workers", "1",
                                 "--threads", str(THREADS)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    assert health(port, timeout=5) == 200
                    break
                except OSError:
                    time.sleep(0.2)
            uploads = [SlowUpload(port, chunked) for _ in range(SLOW_CLIENTS)]
            threads = [threading.Thread(target=upload.run) for upload in uploads]
            for thread in threads:
                thread.start()
            time.sleep(0.5)  # every server thread is now blocked in a body read
            asked = time.monotonic()
            status = health(port, timeout=BOUND + 4)  # without the bound: a timeout here
            waited = time.monotonic() - asked
            for thread in threads:
                thread.join()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert status == 200
    # the health check waited for the first reads to be cut (BOUND + the watchdog's check),
    # not for the slow clients to finish (they would send for SENDING_FOR seconds)
    assert waited < BOUND + 1.5, waited
    for upload in uploads:
        # closed by the server: the first THREADS within the bound, the one that waited for
        # a thread within twice the bound, each well before its client would have finished
        assert upload.ended is not None, (upload, log_path.read_text()[-2000:])
        assert upload.ended - upload.started < 2 * BOUND + 1.5, upload
        assert not upload.answer or upload.answer.startswith(b"HTTP/1.1 408"), upload
    assert sum(upload.answer.startswith(b"HTTP/1.1 408") for upload in uploads) >= THREADS
    assert b"not received within 2 s" in next(u.answer for u in uploads if u.answer)


class _BlockedStream:
    """A body stream whose read blocks until the watchdog shuts the socket it stands for."""

    def __init__(self) -> None:
        self.shut = threading.Event()

    def read(self, size: int) -> bytes:
        self.shut.wait(5)
        return b""


class _Socket:
    def __init__(self, stream: _BlockedStream) -> None:
        self.stream = stream

    def shutdown(self, how: int) -> None:
        assert how == socket.SHUT_RD  # the 408 still has to be written
        self.stream.shut.set()


def test_a_blocked_read_is_ended_at_its_deadline() -> None:
    stream = _BlockedStream()
    started = time.monotonic()
    with pytest.raises(body.BodyTimeout):
        body.read_within(lambda: stream.read(100), 0.3, {"gunicorn.socket": _Socket(stream)},
                         body.BodyWatchdog())
    assert 0.3 <= time.monotonic() - started < 0.3 + 2 * body.CHECK_INTERVAL + 0.2


def test_a_body_in_time_is_read_and_disarmed() -> None:
    watchdog = body.BodyWatchdog()
    key = watchdog.arm(None, 5)
    assert watchdog.disarm(key) is False
    assert watchdog.expire(time.monotonic() + 10) == 0  # nothing left armed to shut
    assert body.read_within(io.BytesIO(b'{"a": 1}').read, 5, {}, body.BodyWatchdog()) == b'{"a": 1}'


def test_without_a_socket_a_late_read_is_refused_all_the_same() -> None:
    class Slow(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            time.sleep(0.3)
            return super().read(size)

    with pytest.raises(body.BodyTimeout):
        body.read_within(Slow(b"{}").read, 0.1, {}, body.BodyWatchdog())


def test_the_watchdog_thread_ends_with_its_app() -> None:
    """One watchdog per app: closing the app's Waymark stops its thread (a test suite, or a
    host that builds apps, would otherwise keep one spinning thread per app)."""
    watchdog = body.BodyWatchdog(interval=0.01)
    watchdog.disarm(watchdog.arm(None, 5))
    thread = watchdog._thread  # the thread is what this test is about
    assert thread is not None and thread.is_alive()
    watchdog.close()
    thread.join(2)
    assert not thread.is_alive()
