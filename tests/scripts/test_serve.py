"""`waymark serve` runs gunicorn for real, and its access log keeps no IP or user agent."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.private_logs import logged_path

SENTINEL_UA = "SentinelBrowser/9.9 (serve-test)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path + "?email=someone@example.com",
                     headers={"User-Agent": SENTINEL_UA})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_serve_answers_health_and_logs_no_personal_data(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    waymark = Path(sys.executable).with_name("waymark")
    env = {**os.environ, "DATABASE_URL": db_url, "WAYMARK_JWT_SECRET": "x" * 40}
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(waymark), "serve", "--port", str(port), "--workers", "1"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 30
            status = 0
            while time.monotonic() < deadline:
                try:
                    status, body = get(port, "/api/analytics/health")
                    break
                except OSError:
                    time.sleep(0.2)
            assert status == 200
            assert b'"db": true' in body or b'"db":true' in body
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    lines = [line for line in log_path.read_text().splitlines() if "/api/analytics/health" in line]
    assert lines, log_path.read_text()
    for line in lines:
        assert "127.0.0.1" not in line
        assert SENTINEL_UA not in line
        assert "someone@example.com" not in line


def raw_request(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        try:
            sock.recv(4096)
        except OSError:
            pass


def test_logs_keep_no_peer_address_no_ids_and_cannot_be_forged(db_url: str,
                                                                tmp_path: Path) -> None:
    """A malformed request made gunicorn log "Invalid request from ip=…"; the decoded path
    let %0A forge a whole log line; user ids in paths stayed after a forget."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    waymark = Path(sys.executable).with_name("waymark")
    env = {**os.environ, "DATABASE_URL": db_url, "WAYMARK_JWT_SECRET": "x" * 40}
    user = "6f1c2c7e-7f57-4b7a-9d0b-1f6d2a3c4b5e"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(waymark), "serve", "--port", str(port), "--workers", "1"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    get(port, "/api/analytics/health")
                    break
                except OSError:
                    time.sleep(0.2)
            raw_request(port, b"NOT A REQUEST LINE\r\n\r\n")
            raw_request(port, f"GET /api/analytics/engagement/{user}%0A127.0.0.1%20forged "
                              "HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    # the server's own bind address is not a client's: leave that start-up line out
    text = "\n".join(line for line in log_path.read_text().splitlines()
                     if "Listening at:" not in line)
    assert "Invalid request from ip=-" in text, text[-2000:]
    assert "127.0.0.1" not in text.replace("127.0.0.1%20forged", "")  # only the encoded path
    assert user not in text
    assert "/api/analytics/engagement/<id>%0A127.0.0.1%20forged" in text
    assert not any(line.startswith("127.0.0.1 forged") for line in text.splitlines())


@pytest.mark.parametrize(("raw", "logged"), [
    ("/api/analytics/users/6F1C2C7E-7F57-4B7A-9D0B-1F6D2A3C4B5E?x=1", "/api/analytics/users/<id>"),
    ("/quests/42/start", "/quests/<id>/start"),
    ("/a%0Ab", "/a%0Ab"),
    ("/caf\u00e9\nx", "/caf\u00e9%0Ax"),
])
def test_logged_path(raw: str, logged: str) -> None:
    assert logged_path(raw) == logged
