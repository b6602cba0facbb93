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
