"""xAPI 1.0.3 statements to a learning record store, and their voiding when a learner is forgotten.

Quest, task, badge, tutor and sign-in events of signed-in learners become statements (the
mapping is ``VERBS``/``OBJECTS`` below; docs/exports.md lists it as our profile). The actor
is a pseudonymous ``account``: ``homePage`` is the platform, ``name`` a keyed hash of the
user id — never an e-mail or the id itself. Its key is random, per LRS, and kept in
``waymark.xapi_targets``; the hash is taken of the forget log's ``user_ref`` (the SHA-256 of
the id), so a forget logged long after the events were deleted still names the actor whose
statements must be voided.

Statement ids are derived from event ids (uuid5), so a repeated run — or one repeated after
a crash — sends the same ids and the LRS stores nothing twice. What is sent is what the
table holds after the privacy step; message texts of the tutor and safety flags are never
sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from backend.config import XapiSettings
from backend.services.exports import QUERIES

log = logging.getLogger("waymark.xapi")

XAPI_VERSION = "1.0.3"
#: statement ids are uuid5(NAMESPACE, event id); voiding statements uuid5(NAMESPACE, "void:" id)
NAMESPACE = uuid.UUID("6f1d3f4e-8a8b-5c2e-9d41-5a7e0c3b2a10")
BATCH = 500  # statements per POST

ADL = "http://adlnet.gov/expapi/verbs/"
VOIDED = ADL + "voided"

#: event type → (verb IRI, its English display, the kind of object)
VERBS: dict[str, tuple[str, str, str]] = {
    "quest_viewed": (ADL + "experienced", "experienced", "quest"),
    "quest_started": (ADL + "attempted", "attempted", "quest"),
    "quest_completed": (ADL + "completed", "completed", "quest"),
    "quest_abandoned": ("https://w3id.org/xapi/adl/verbs/abandoned", "abandoned", "quest"),
    "task_viewed": (ADL + "experienced", "experienced", "task"),
    "task_completed": (ADL + "completed", "completed", "task"),
    "evidence_uploaded": ("http://activitystrea.ms/schema/1.0/submit", "submitted", "quest"),
    "badge_viewed": (ADL + "experienced", "experienced", "badge"),
    "badge_claimed": ("http://activitystrea.ms/schema/1.0/receive", "received", "badge"),
    "badge_earned": ("http://id.tincanapi.com/verb/earned", "earned", "badge"),
    "tutor_opened": (ADL + "launched", "launched", "tutor"),
    "tutor_message_sent": (ADL + "asked", "asked", "tutor"),
    "login_success": ("https://w3id.org/xapi/adl/verbs/logged-in", "logged in", "platform"),
    "logout": ("https://w3id.org/xapi/adl/verbs/logged-out", "logged out", "platform"),
}
EVENT_TYPES = sorted(VERBS)

#: kind of object → (the event_data key naming it, its path under the home page, the
#: activity type IRI); the platform itself needs no key
OBJECTS: dict[str, tuple[str | None, str, str]] = {
    "quest": ("quest_id", "/quests/{}", "http://adlnet.gov/expapi/activities/module"),
    "task": ("task_id", "/tasks/{}", "http://adlnet.gov/expapi/activities/lesson"),
    "badge": ("badge_id", "/badges/{}", "http://id.tincanapi.com/activitytype/badge"),
    "tutor": (None, "/tutor", "http://id.tincanapi.com/activitytype/chat-channel"),
    "platform": (None, "", "http://id.tincanapi.com/activitytype/lms"),
}
TITLE_KEYS = {"quest": "quest_title", "task": "task_title", "badge": "badge_title"}


class LrsError(RuntimeError):
    """The LRS refused what we sent (4xx other than 429) or stayed unreachable: the run fails
    loudly and keeps its progress, so the next run starts where this one stopped."""


# ---- the actor and the statements -------------------------------------------------------


def user_ref(user_id: uuid.UUID | str) -> str:
    """The forget log's reference of a user: hex SHA-256 of the id as lower-case text."""
    return hashlib.sha256(str(user_id).lower().encode()).hexdigest()


def actor(key: bytes, ref: str, home_page: str) -> dict[str, Any]:
    """The pseudonymous actor of the user whose ``user_ref`` is ``ref``."""
    name = hmac.new(key, ref.encode(), hashlib.sha256).hexdigest()
    return {"objectType": "Agent", "account": {"homePage": home_page, "name": name}}


def statement_id(event_id: uuid.UUID | str) -> str:
    return str(uuid.uuid5(NAMESPACE, str(event_id)))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) and value.strip() else None


def statement(row: dict[str, Any], key: bytes, home_page: str) -> dict[str, Any] | None:
    """The statement of one stored event; None when it names no object (a quest event with
    no quest_id) or its type is not mapped."""
    mapped = VERBS.get(row["event_type"])
    if mapped is None:
        return None
    verb_id, display, kind = mapped
    data = row.get("event_data") or {}
    id_key, path, activity_type = OBJECTS[kind]
    if id_key is None:
        object_id = home_page + path
    else:
        ident = _text(data.get(id_key))
        if ident is None:
            return None
        object_id = home_page + path.format(urllib.parse.quote(ident, safe=""))
    definition: dict[str, Any] = {"type": activity_type}
    title = _text(data.get(TITLE_KEYS.get(kind, "")))
    if title:
        definition["name"] = {"en": title}
    result: dict[str, Any] = {}
    if verb_id == ADL + "completed":
        result["completion"] = True
    extensions = {f"{home_page}/xapi/extensions/{k}": data[k] for k in ("xp",)
                  if isinstance(data.get(k), int | float)}
    if extensions:
        result["extensions"] = extensions
    context: dict[str, Any] = {"platform": "Waymark"}
    pillar = _text(data.get("pillar"), 64)
    if pillar:
        context["extensions"] = {f"{home_page}/xapi/extensions/pillar": pillar}
    out: dict[str, Any] = {
        "id": statement_id(row["event_id"]),
        "actor": actor(key, user_ref(row["user_id"]), home_page),
        "verb": {"id": verb_id, "display": {"en": display}},
        "object": {"objectType": "Activity", "id": object_id, "definition": definition},
        "timestamp": _iso(row["occurred_at"]),
        "context": context,
    }
    if result:
        out["result"] = result
    return out


def voiding(target: dict[str, Any], statement_ref: str) -> dict[str, Any]:
    """The statement that voids ``statement_ref``, by the same pseudonymous actor."""
    return {
        "id": str(uuid.uuid5(NAMESPACE, "void:" + statement_ref)),
        "actor": target,
        "verb": {"id": VOIDED, "display": {"en": "voided"}},
        "object": {"objectType": "StatementRef", "id": statement_ref},
    }


# ---- the LRS ------------------------------------------------------------------------------


class Lrs:
    """An xAPI LRS over HTTP: POST statements in batches, GET an actor's statements.

    Transient failures (unreachable, timeout, 5xx, 429) are retried with a capped
    exponential backoff; anything else the LRS refuses raises :class:`LrsError`.
    """

    def __init__(self, settings: XapiSettings, page_size: int = BATCH) -> None:
        if not settings.endpoint:
            raise LrsError("WAYMARK_XAPI_ENDPOINT is not set")
        self.settings = settings
        self.endpoint = settings.endpoint
        self.page_size = page_size  # statements per GET page (the LRS may send fewer)

    def _request(self, method: str, url: str, body: bytes | None = None) -> Any:
        headers = {"X-Experience-API-Version": XAPI_VERSION, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.settings.authorization:
            headers["Authorization"] = self.settings.authorization
        attempts = self.settings.max_attempts
        for attempt in range(1, attempts + 1):
            request = urllib.request.Request(  # noqa: S310 (see below)
                url, data=body, method=method, headers=headers)
            try:
                with urllib.request.urlopen(  # noqa: S310 (an http(s) URL: config checks it)
                        request, timeout=self.settings.timeout_seconds) as answer:
                    raw = answer.read()
                    return json.loads(raw) if raw else None
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode(errors="replace")
                if exc.code != 429 and exc.code < 500:
                    raise LrsError(f"the LRS answered {exc.code} to {method} {url}: "
                                   f"{detail}") from exc
                reason = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:  # URLError, timeouts, a broken answer
                reason = str(exc)
            if attempt == attempts:
                raise LrsError(f"the LRS did not answer {method} {url} after {attempts} "
                               f"attempts ({reason})")
            pause = min(60.0, self.settings.retry_base_seconds * 2 ** (attempt - 1))
            log.warning("waymark xapi: %s %s failed (%s); retrying in %.1f s",
                        method, url, reason, pause)
            time.sleep(pause)
        raise AssertionError("unreachable")

    def post(self, statements: list[dict[str, Any]]) -> None:
        """Store ``statements`` (ids the LRS already holds are not stored twice)."""
        if statements:
            self._request("POST", self.endpoint + "/statements",
                          json.dumps(statements, separators=(",", ":")).encode())

    def statements_of(self, agent: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every statement whose actor is ``agent``, following the LRS's ``more`` links."""
        query = urllib.parse.urlencode({"agent": json.dumps(agent, separators=(",", ":")),
                                        "limit": self.page_size})
        url: str | None = f"{self.endpoint}/statements?{query}"
        while url:
            answer = self._request("GET", url) or {}
            yield from answer.get("statements", [])
            more = answer.get("more")
            url = urllib.parse.urljoin(self.endpoint + "/", more) if more else None
            if url and urllib.parse.urlsplit(url)[:2] != urllib.parse.urlsplit(self.endpoint)[:2]:
                raise LrsError(f"the LRS's 'more' link leaves it: {more!r}")


# ---- the sync ---------------------------------------------------------------------------


@dataclass
class SyncStats:
    statements: int = 0
    skipped: int = 0  # mapped events that name no object
    forgets: int = 0
    voided: int = 0


def _batches(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def sync(conn: psycopg.Connection[Any], lrs: Lrs, home_page: str, *, now: datetime,
         settle: timedelta) -> SyncStats:
    """Send the events received since the last run, then void the statements of everyone
    forgotten since the last run (in that order: a statement sent in this run for someone
    forgotten during it is voided in it too)."""
    stats = SyncStats()
    with conn.transaction():
        target = conn.execute(QUERIES["xapi_target"], {
            "endpoint": lrs.endpoint, "key": secrets.token_bytes(32)}).fetchone()
    assert target is not None  # an upsert RETURNING always answers
    key, after, last_deletion = bytes(target[0]), target[1], target[2]
    before = now - settle
    if before > after:
        stats.statements, stats.skipped = _send_events(conn, lrs, key, home_page, after, before)
    _void_forgotten(conn, lrs, key, home_page, last_deletion, stats)
    return stats


def _send_events(conn: psycopg.Connection[Any], lrs: Lrs, key: bytes, home_page: str,
                 after: datetime, before: datetime) -> tuple[int, int]:
    """Stream the window's events through one server-side cursor, POSTing as they come; the
    watermark moves once all are sent (a run that dies re-sends the window: the LRS keeps
    each statement id once). Answers (statements sent, events that named no object)."""
    sent = seen = 0
    with conn.transaction(), conn.cursor(name="waymark_xapi_events") as cur:
        cur.itersize = BATCH * 4
        cur.execute(QUERIES["xapi_events"],
                    {"after": after, "before": before, "types": EVENT_TYPES})
        columns = [c.name for c in cur.description or ()]
        batch: list[dict[str, Any]] = []
        for values in cur:
            seen += 1
            made = statement(dict(zip(columns, values, strict=True)), key, home_page)
            if made is not None:
                batch.append(made)
            if len(batch) == BATCH:
                lrs.post(batch)
                sent += len(batch)
                batch = []
        lrs.post(batch)
        sent += len(batch)
    with conn.transaction():
        conn.execute(QUERIES["xapi_save_sent"],
                     {"before": before, "sent": sent, "endpoint": lrs.endpoint})
    return sent, seen - sent


def _void_forgotten(conn: psycopg.Connection[Any], lrs: Lrs, key: bytes, home_page: str,
                    last_deletion: int, stats: SyncStats) -> None:
    """For each forget logged since the last run: ask the LRS for the actor's statements and
    void every one not voided yet; then record it (progress + an audit row without the
    actor). Voiding ids are derived, so a repeated run sends nothing new."""
    forgets = conn.execute(QUERIES["xapi_forgets"], {"after": last_deletion}).fetchall()
    conn.commit()
    host = urllib.parse.urlsplit(lrs.endpoint).netloc
    for deletion_id, ref in forgets:
        target = actor(key, ref, home_page)
        voided, targets = set(), []
        for found in lrs.statements_of(target):
            if found.get("verb", {}).get("id") == VOIDED:
                voided.add(found.get("object", {}).get("id"))
            else:
                targets.append(found["id"])
        todo = [voiding(target, ref_id) for ref_id in targets if ref_id not in voided]
        for batch in _batches(todo, BATCH):
            lrs.post(batch)
        with conn.transaction():
            conn.execute(QUERIES["xapi_save_voided"], {
                "deletion_id": deletion_id, "voided": len(todo), "endpoint": lrs.endpoint,
                "lrs": host})
        stats.forgets += 1
        stats.voided += len(todo)
