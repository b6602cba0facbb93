"""The weekly digest: per teacher and per parent, what changed for the students they may see.

Each recipient's figures are read *as that recipient* (``Database.as_user`` with their
role), so the same RLS policies that guard the API decide which students a digest may
mention. Class aggregates describing fewer than WAYMARK_MIN_GROUP_SIZE students are
withheld. A digest is claimed per recipient and week before it is sent, so re-runs and
concurrent runs send it once; a failed one is tried again by the next run.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from backend.config import AlertSettings
from backend.db import Database, fetch_all
from backend.services.alerts import QUERIES, channels
from backend.services.alerts.deliveries import link_for, resolve_address
from backend.services.alerts.messages import Message

CHANGE_STEP = 0.1


@dataclass
class DigestCounts:
    """What one run did."""

    recipients: int = 0
    delivered: int = 0
    skipped: int = 0
    failed: int = 0
    already_sent: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts for the summary line."""
        return dict(self.__dict__)


def week_start(now: datetime) -> date:
    """The Monday of ``now``'s ISO week: the digest's idempotency key with the recipient."""
    return (now - timedelta(days=now.weekday())).date()


def claims_of(recipient_id: Any, role: str) -> dict[str, Any]:
    """The claims a recipient's own session would carry: RLS reads the digest as them."""
    return {"sub": str(recipient_id), "role": "authenticated", "aud": "authenticated",
            "app_metadata": {"role": role}}


def gather(db: Database, recipient_id: Any, role: str, *, now: datetime, threshold: float
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(students, classes) as the recipient may see them."""
    params = {"now": now, "week_ago": now - timedelta(days=7), "threshold": threshold}
    with db.as_user(claims_of(recipient_id, role)) as conn:
        students = fetch_all(conn, QUERIES["digest_students"], params)
        classes = fetch_all(conn, QUERIES["digest_classes"], params) if role == "teacher" else []
    return students, classes


def compose(role: str, students: list[dict[str, Any]], classes: list[dict[str, Any]], *,
            settings: AlertSettings, min_group_size: int, week: date) -> Message:
    """The digest e-mail: scores and class figures for a teacher, plain words for a parent."""
    subject = f"Waymark weekly digest, week of {week.isoformat()}"
    entries = []  # (who, what, link)
    for s in students:
        short = str(s["student_id"])[:8]
        who = (("Your child" if len(students) == 1 else f"Your child {short}")
               if role == "parent" else f"Student {short}")
        entries.append((who, _student_line(s, role), link_for(settings, s["student_id"])))
    class_lines = [_class_line(c, min_group_size) for c in classes]
    text_parts = ["This week, for the students you may see:", "",
                  *[f"- {who}: {what} ({link})" for who, what, link in entries]]
    if not entries:
        text_parts.append("- no students to report")
    if class_lines:
        text_parts += ["", "Your classes:", *[f"- {line}" for line in class_lines]]
    text = "\n".join(text_parts) + "\n"
    esc = html.escape
    items = "".join(f"<li><a href=\"{esc(link)}\" style=\"color:#0b57d0\">{esc(who)}</a>: "
                    f"{esc(what)}</li>" for who, what, link in entries
                    ) or "<li>no students to report</li>"
    klass = ("" if not class_lines else "<h2 style=\"font-size:16px\">Your classes</h2><ul>"
             + "".join(f"<li>{esc(line)}</li>" for line in class_lines) + "</ul>")
    body = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"{esc(subject)}</title></head><body style=\"font-family:system-ui,sans-serif;"
            f"max-width:560px;margin:24px auto;color:#1f2933;line-height:1.5\">"
            f"<h1 style=\"font-size:20px\">{esc(subject)}</h1>"
            f"<p>This week, for the students you may see:</p><ul>{items}</ul>{klass}"
            f"<p style=\"color:#616e7c;font-size:13px\">Sent by Waymark.</p></body></html>")
    return Message(subject, text, body)


def _student_line(s: dict[str, Any], role: str) -> str:
    now, before = s["risk_now"], s["risk_before"]
    active = f"active on {s['active_days']} of the last 7 days"
    if role == "parent":
        if now is None:
            trend = "no assessment yet"
        elif before is not None and now - before > CHANGE_STEP:
            trend = "less engaged than last week; a friendly chat may help"
        elif before is not None and before - now > CHANGE_STEP:
            trend = "more engaged than last week"
        else:
            trend = "about the same as last week"
        return f"{trend}, {active}"
    score = "not scored" if now is None else f"risk {now:.2f}"
    change = "" if now is None or before is None else f" (a week ago {before:.2f})"
    count = s["actions"]
    actions = f", {count} action{'s' if count != 1 else ''} recorded" if count else ""
    return f"{score}{change}, {active}{actions}"


def _class_line(c: dict[str, Any], min_group_size: int) -> str:
    if c["students"] < min_group_size:
        return (f"{c['name']}: fewer than {min_group_size} students, "
                "class figures withheld")
    mean = "no scores" if c["mean_risk"] is None else f"mean risk {c['mean_risk']:.2f}"
    return f"{c['name']}: {c['students']} students, {c['flagged']} flagged, {mean}"


def send_digests(db: Database, settings: AlertSettings, *, now: datetime,
                 min_group_size: int) -> DigestCounts:
    """Compose and send this week's digest to every teacher and parent not yet sent one."""
    counts = DigestCounts()
    week = week_start(now)
    for recipient in db.fetch_all(QUERIES["digest_recipients"]):
        counts.recipients += 1
        rid, role = recipient["recipient_id"], recipient["recipient_role"]
        claim = db.fetch_one(QUERIES["claim_digest"], {
            "recipient_id": rid, "recipient_role": role, "week_start": week,
            "max_attempts": settings.max_attempts})
        if claim is None:
            counts.already_sent += 1
            continue
        students, classes = gather(db, rid, role, now=now, threshold=settings.threshold)
        status, error = _send(db, settings, rid, role, students, classes, week=week,
                              min_group_size=min_group_size,
                              delivery_id=str(claim["delivery_id"]))
        setattr(counts, status, getattr(counts, status) + 1)
        db.execute(QUERIES["finish_digest"], {
            "delivery_id": claim["delivery_id"], "status": status, "error": error,
            "students": len(students), "now": now})
    return counts


def _send(db: Database, settings: AlertSettings, rid: Any, role: str,
          students: list[dict[str, Any]], classes: list[dict[str, Any]], *, week: date,
          min_group_size: int, delivery_id: str) -> tuple[str, str | None]:
    if not students:
        return "skipped", "no students to report"
    if settings.smtp_url is None or (settings.address_view is None
                                     and settings.address_url is None):
        return "skipped", "e-mail is not configured (WAYMARK_SMTP_URL, an address lookup)"
    try:
        address = resolve_address(db, settings, rid)
    except channels.DeliveryError as exc:
        return "failed", str(exc)
    if address is None:
        return "skipped", "no address for this recipient"
    message = compose(role, students, classes, settings=settings,
                      min_group_size=min_group_size, week=week)
    try:
        channels.send_email(channels.SmtpTarget.parse(settings.smtp_url), settings.sender,
                            address, message, delivery_id=delivery_id,
                            timeout=settings.timeout_seconds)
    except channels.DeliveryError as exc:
        return "failed", str(exc)
    return "delivered", None
