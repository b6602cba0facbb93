"""Real receivers for alert tests: an aiosmtpd SMTP server and an http.server webhook
receiver on loopback, each in its own thread, recording what arrived."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

SECRET = "test-webhook-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        with self.lock:
            self.messages.append(mail)
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[str, list[EmailMessage]]]:
    """A local SMTP server: (smtp URL, the list of messages it received)."""
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}", inbox.messages
    finally:
        controller.stop()


@dataclass
class Receiver:
    """What the webhook receiver saw; ``fail_first`` requests answer 503 first."""

    fail_first: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def webhook_receiver(fail_first: int = 0) -> Iterator[tuple[str, Receiver]]:
    """A local HTTP receiver that verifies X-Waymark-Signature (401 when wrong)."""
    seen = Receiver(fail_first=fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            signed = hmac.compare_digest(expected, self.headers.get("X-Waymark-Signature", ""))
            record = {"delivery": self.headers.get("X-Waymark-Delivery"), "signed": signed,
                      "body": json.loads(body)}
            with seen.lock:
                seen.requests.append(record)
                status = 503 if len(seen.requests) <= seen.fail_first else (
                    200 if signed else 401)
                if status == 200:
                    seen.accepted.append(record)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/waymark", seen
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def address_server(addresses: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """A local host-app address lookup: GET ?user_id= → {"email"}, 404 unknown, 401 unsigned."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            user_id = self.path.split("user_id=", 1)[-1]
            asked.append(user_id)
            expected = "sha256=" + hmac.new(SECRET.encode(), user_id.encode(),
                                            hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, self.headers.get("X-Waymark-Signature", "")):
                status, body = 401, b""
            elif user_id in addresses:
                status, body = 200, json.dumps({"email": addresses[user_id]}).encode()
            else:
                status, body = 404, b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/addresses", asked
    finally:
        server.shutdown()
        server.server_close()
