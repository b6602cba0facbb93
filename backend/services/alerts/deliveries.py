"""Send each planned alert once: claim, send, record — with retries and backoff.

A run claims due rows (``FOR UPDATE SKIP LOCKED``, status ``sending`` committed before
anything is sent), so two runs at the same time never send the same alert. A transient
failure (5xx, timeout, refused connection) puts the row back as ``pending`` with
exponential backoff; the run waits for retries due within ``wait_seconds``, later runs
pick up the rest; after ``max_attempts`` it is ``failed``. The log keeps ids, status,
attempts and the error class, never an address or a message body.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import sql

from backend.config import AlertSettings
from backend.db import Database
from backend.services.alerts import QUERIES, channels, messages

STALE_CLAIM = timedelta(minutes=15)
CLAIM_BATCH = 50
MAX_BACKOFF_SECONDS = 3600.0


@dataclass
class RunCounts:
    """What one run did, for the job's summary line."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as ``key=value`` material."""
        return {"delivered": self.delivered, "retried": self.retried, "failed": self.failed,
                "skipped": self.skipped}


def backoff(settings: AlertSettings, attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: base · 2^(attempts-1), capped at an hour."""
    return float(min(settings.retry_base_seconds * 2 ** max(attempts - 1, 0),
                     MAX_BACKOFF_SECONDS))


def resolve_address(db: Database, settings: AlertSettings, user_id: Any) -> str | None:
    """The recipient's address from the host: its lookup URL, else its view."""
    if settings.address_url:
        return channels.lookup_address(settings.address_url, settings.webhook_secret,
                                       str(user_id), timeout=settings.timeout_seconds)
    if settings.address_view:
        return address_of(db, settings.address_view, user_id)
    return None


def address_of(db: Database, view: str, user_id: Any) -> str | None:
    """The recipient's address from the host's view (``schema.view``: user_id → email)."""
    parts = view.split(".")
    query = sql.SQL("SELECT email FROM {} WHERE user_id = %(user_id)s LIMIT 1").format(
        sql.Identifier(*parts))
    with db.connection() as conn:
        row = conn.execute(query, {"user_id": user_id}).fetchone()
    return str(row[0]) if row and row[0] else None


def webhook_payload(db: Database, settings: AlertSettings, alert: dict[str, Any]) -> dict[str, Any]:
    """The JSON a receiver gets: ids, direction, score, factors in words, link, recipients."""
    with db.connection() as conn:
        recipients = conn.execute(QUERIES["recipients_of_crossing"], {
            "crossing_id": alert["crossing_id"],
            "admins": list(settings.admins)}).fetchall()
    first = alert["first_flagged_at"]
    return {
        "type": "risk_crossing", "delivery_id": str(alert["delivery_id"]),
        "crossing_id": str(alert["crossing_id"]), "student_id": str(alert["student_id"]),
        "direction": alert["direction"], "assessed_on": alert["assessed_on"].isoformat(),
        "risk_score": round(float(alert["risk_score"]), 4),
        "previous_score": (None if alert["previous_score"] is None
                           else round(float(alert["previous_score"]), 4)),
        "threshold": alert["threshold"],
        "first_flagged_at": first.isoformat() if first else None,
        "factors": messages.factor_words(alert["factors"]),
        "link": link_for(settings, alert["student_id"]),
        "recipients": [{"user_id": str(r[0]), "relation": r[1]} for r in recipients],
    }


def link_for(settings: AlertSettings, student_id: Any) -> str:
    """The student's detail page, from WAYMARK_ALERT_STUDENT_URL."""
    return settings.student_url.replace("{student_id}", str(student_id))


def send_one(db: Database, settings: AlertSettings, alert: dict[str, Any]) -> str | None:
    """Send one claimed alert; returns None when sent, or a reason to skip it."""
    delivery_id = str(alert["delivery_id"])
    if alert["channel"] == "webhook":
        assert settings.webhook_url and settings.webhook_secret, "planned without a webhook"
        channels.post_webhook(settings.webhook_url, settings.webhook_secret, delivery_id,
                              webhook_payload(db, settings, alert),
                              timeout=settings.timeout_seconds)
        return None
    if settings.smtp_url is None:
        return "e-mail is not configured (WAYMARK_SMTP_URL)"
    if settings.address_view is None and settings.address_url is None:
        return "no address lookup (WAYMARK_ALERT_ADDRESS_URL or _VIEW)"
    address = resolve_address(db, settings, alert["recipient_id"])
    if address is None:
        return "no address for this recipient"
    message = messages.for_recipient(alert, alert["recipient_role"],
                                     link_for(settings, alert["student_id"]))
    channels.send_email(channels.SmtpTarget.parse(settings.smtp_url), settings.sender,
                        address, message, delivery_id=delivery_id,
                        timeout=settings.timeout_seconds)
    return None


def deliver_due(db: Database, settings: AlertSettings, *, clock: Callable[[], datetime],
                wait_seconds: float = 0.0, sleep: Callable[[float], None] = time.sleep
                ) -> RunCounts:
    """Send every due alert; wait for retries falling due within ``wait_seconds``."""
    counts = RunCounts()
    tries: Counter[Any] = Counter()
    deadline = time.monotonic() + wait_seconds
    while True:
        now = clock()
        claimed = db.fetch_all(QUERIES["claim_due"], {
            "now": now, "stale": now - STALE_CLAIM, "limit": CLAIM_BATCH})
        for alert in claimed:
            tries[alert["delivery_id"]] += 1
            if tries[alert["delivery_id"]] > settings.max_attempts:
                # a finished row came back: a bug in the claim, never a reason to resend
                raise RuntimeError(f"delivery {alert['delivery_id']} claimed again after "
                                   f"{settings.max_attempts} attempts in one run")
            _attempt(db, settings, dict(alert), counts, clock)
        if claimed:
            continue
        next_at = db.fetch_one(QUERIES["next_due"])
        if next_at is None or next_at["next_at"] is None:
            return counts
        pause = (next_at["next_at"] - clock()).total_seconds()
        if time.monotonic() + max(pause, 0) > deadline:
            return counts
        sleep(max(pause, 0.01))


def _attempt(db: Database, settings: AlertSettings, alert: dict[str, Any], counts: RunCounts,
             clock: Callable[[], datetime]) -> None:
    params: dict[str, Any] = {"delivery_id": alert["delivery_id"], "now": clock()}
    try:
        reason = send_one(db, settings, alert)
    except channels.DeliveryError as exc:
        if exc.transient and alert["attempts"] < settings.max_attempts:
            wait = timedelta(seconds=backoff(settings, alert["attempts"]))
            db.execute(QUERIES["mark_retry"], {**params, "error": str(exc),
                                               "next_attempt_at": clock() + wait})
            counts.retried += 1
        else:
            db.execute(QUERIES["mark_final"], {**params, "status": "failed", "error": str(exc)})
            counts.failed += 1
        return
    if reason is None:
        db.execute(QUERIES["mark_delivered"], params)
        counts.delivered += 1
    else:
        db.execute(QUERIES["mark_final"], {**params, "status": "skipped", "error": reason})
        counts.skipped += 1


def status_counts(db: Database) -> dict[str, int]:
    """Deliveries by status (the log's state after a run)."""
    return dict(Counter({r["status"]: r["n"] for r in db.fetch_all(QUERIES["delivery_counts"])}))
