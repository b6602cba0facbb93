"""The two ways an alert leaves: a signed webhook and an e-mail. Both say whether a failure
is worth retrying (a 5xx, a timeout, a refused connection) or final (a 4xx, a bad address).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from urllib.parse import unquote, urlsplit

from backend.services.alerts.messages import Message

SIGNATURE_HEADER = "X-Waymark-Signature"
DELIVERY_HEADER = "X-Waymark-Delivery"


class DeliveryError(Exception):
    """A send failed; ``transient`` says whether trying again may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>``: what a receiver recomputes to trust us."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(url: str, secret: str, delivery_id: str, payload: dict[str, Any], *,
                 timeout: float) -> int:
    """POST the JSON payload signed; returns the status. 5xx/timeouts are transient."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    if not url.startswith(("http://", "https://")):
        raise DeliveryError("the webhook URL must be http(s)", transient=False)
    request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310
        "Content-Type": "application/json", "User-Agent": "waymark-alerts",
        SIGNATURE_HEADER: signature(secret, body), DELIVERY_HEADER: delivery_id})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"webhook answered {exc.code}", transient=exc.code >= 500
                            or exc.code in (408, 429)) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise DeliveryError(f"webhook unreachable: {exc}", transient=True) from exc


def lookup_address(url: str, secret: str | None, user_id: str, *, timeout: float) -> str | None:
    """Ask the host app for a recipient's address: GET ``url?user_id=…`` → ``{"email": …}``.

    Signed like the webhook (HMAC of the user id) so the host can refuse anyone else;
    404 means "no address". Waymark keeps the answer only for the one send."""
    if not url.startswith(("http://", "https://")):
        raise DeliveryError("the address lookup URL must be http(s)", transient=False)
    separator = "&" if "?" in url else "?"
    headers = {"User-Agent": "waymark-alerts"}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, user_id.encode())
    request = urllib.request.Request(f"{url}{separator}user_id={user_id}",  # noqa: S310
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            found = json.loads(answer.read() or b"{}").get("email")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise DeliveryError(f"address lookup answered {exc.code}",
                            transient=exc.code >= 500) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError) as exc:
        raise DeliveryError(f"address lookup failed: {exc}", transient=True) from exc
    return str(found) if found else None


@dataclass(frozen=True)
class SmtpTarget:
    """Where mail goes, parsed from ``smtp://[user:pass@]host[:port]`` (``smtps://``: TLS)."""

    host: str
    port: int
    tls: bool
    starttls: bool
    user: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        """Parse WAYMARK_SMTP_URL; ``?starttls=1`` upgrades a plain connection."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("WAYMARK_SMTP_URL must look like smtp://user:pass@host:port")
        tls = parts.scheme == "smtps"
        return cls(host=parts.hostname, port=parts.port or (465 if tls else 25), tls=tls,
                   starttls="starttls=1" in parts.query,
                   user=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None)


def send_email(target: SmtpTarget, sender: str, to: str, message: Message, *,
               delivery_id: str, timeout: float) -> None:
    """Send one multipart (plain text + HTML) e-mail; connection trouble is transient."""
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, to, message.subject
    mail["Message-ID"] = make_msgid(idstring=delivery_id.replace("-", ""))
    mail["X-Waymark-Delivery"] = delivery_id
    mail.set_content(message.text)
    mail.add_alternative(message.html, subtype="html")
    client_class = smtplib.SMTP_SSL if target.tls else smtplib.SMTP
    try:
        with client_class(target.host, target.port, timeout=timeout) as client:
            if target.starttls:
                client.starttls()
            if target.user:
                client.login(target.user, target.password or "")
            client.send_message(mail)
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError("recipient refused", transient=False) from exc
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP {exc.smtp_code}", transient=exc.smtp_code >= 400
                            and exc.smtp_code < 500) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP unreachable: {exc}", transient=True) from exc
