"""``user_sessions`` maintained from events as they are written, a batch at a time.

A session is one person's run of events with no gap longer than 30 minutes: the person is
the signed-in user, or else the anonymous visitor hash of a client event (server events of
anonymous callers open no session). The writer hands each batch here before inserting it:
the batch is split into segments in memory, the first segment of each person is joined to
that person's open session in one set-based query, then every segment is upserted in one
statement and each event gets its ``session_id``. App-launch pings (``/sessions``) insert one
session record per launch, which the events that follow then continue.
"""

from __future__ import annotations

import json
import operator
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from backend.services.ingest.items import new_id
from backend.services.ingest.statements import QUERIES
from backend.taxonomy import SESSION_GAP

#: event types that count as a page in ``page_count`` (and so decide ``is_bounce``).
PAGE_TYPES = frozenset({"page_view", "route_change"})

Key = tuple[str, Any]

#: the statements (queries.sql): each person's open session, and the segments upserted,
#: both as one JSON document (calls of PL/pgSQL functions that keep their plans:
#: sql/functions/waymark.open_sessions.sql, waymark.upsert_sessions.sql)
FIND_OPEN_SESSIONS = QUERIES["find_open_sessions"]
UPSERT_SESSIONS = QUERIES["upsert_sessions"]


@dataclass
class Segment:
    """One person's events in a batch with no gap over 30 minutes: a session or part of one."""

    session_id: uuid.UUID
    user_id: uuid.UUID | None
    visitor_hash: bytes | None
    started_at: datetime
    last_seen_at: datetime
    first_of_key: bool
    page_count: int = 0
    event_count: int = 0
    is_app_launch: bool = False
    browser: str | None = None
    os: str | None = None
    device_type: str | None = None
    entry_page: str | None = None
    exit_page: str | None = None
    referrer: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: started_at of the stored session this segment joined (None: a new session)
    joined_at: datetime | None = None


def session_key(row: dict[str, Any]) -> Key | None:
    """Whose session a row belongs to: the user, or an anonymous client's visitor hash."""
    if row.get("user_id") is not None:
        return ("user", row["user_id"])
    if row.get("source", "client") == "client" and row.get("visitor_hash") is not None:
        return ("visitor", row["visitor_hash"])
    return None


def _open_segment(row: dict[str, Any], first: bool) -> Segment:
    segment = Segment(
        session_id=new_id(), user_id=row.get("user_id"),
        visitor_hash=row.get("visitor_hash"), started_at=row["occurred_at"],
        last_seen_at=row["occurred_at"], first_of_key=first,
        browser=row.get("browser"), os=row.get("os"), device_type=row.get("device_type"),
        referrer=row.get("referrer"), utm_source=row.get("utm_source"),
        utm_medium=row.get("utm_medium"), utm_campaign=row.get("utm_campaign"))
    return segment


_occurred_at = operator.itemgetter("occurred_at")
_event_type = operator.methodcaller("get", "event_type")
_page_path = operator.methodcaller("get", "page_path")


def _segment_of(rows: list[dict[str, Any]], first: bool) -> Segment:
    """The segment of one person's rows (in time order, no gap over 30 minutes).

    Counted with C-level iterators: the writer runs this for every event it stores.
    """
    segment = _open_segment(rows[0], first)
    segment.rows = rows
    segment.event_count = len(rows)
    segment.last_seen_at = rows[-1]["occurred_at"]
    segment.page_count = sum(map(PAGE_TYPES.__contains__, map(_event_type, rows)))
    segment.entry_page = next(filter(None, map(_page_path, rows)), None)
    if segment.entry_page is not None:
        segment.exit_page = next(filter(None, map(_page_path, reversed(rows))))
    return segment


def segments_of(rows: list[dict[str, Any]]) -> list[Segment]:
    """Split a batch's rows into per-person segments separated by gaps over 30 minutes.

    The person is :func:`session_key`'s, inlined: a user id and a visitor hash (bytes)
    never compare equal, so they can share one dict without a tag.
    """
    by_key: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        key = row.get("user_id")
        if key is None:
            key = row.get("visitor_hash")
            if key is None or row.get("source", "client") != "client":
                continue
        found = by_key.get(key)
        if found is None:
            by_key[key] = [row]
        else:
            found.append(row)
    segments: list[Segment] = []
    for key_rows in by_key.values():
        if len(key_rows) > 1:
            key_rows.sort(key=_occurred_at)
        start, first = 0, True
        last = key_rows[0]["occurred_at"]
        for index in range(1, len(key_rows)):
            at = key_rows[index]["occurred_at"]
            if at - last > SESSION_GAP:
                segments.append(_segment_of(key_rows[start:index], first))
                start, first = index, False
            last = at
        segments.append(_segment_of(key_rows[start:] if start else key_rows, first))
    return segments


def launch_segments(pings: list[dict[str, Any]]) -> list[Segment]:
    """One new session record per app-launch ping (``/sessions``)."""
    segments = []
    for ping in pings:
        if session_key(ping) is None:
            continue
        segment = _open_segment(ping, first=False)
        # the id made when the ping was received: a redelivered ping (JetStream) is known
        segment.session_id = ping.get("session_id") or segment.session_id
        segment.is_app_launch = True
        segment.entry_page = segment.exit_page = ping.get("page_path")
        segments.append(segment)
    return segments


def segments_json(segments: list[Segment]) -> str:
    """The segments as :data:`UPSERT_SESSIONS`'s parameter (a JSON array of rows)."""
    return json.dumps([{
        "session_id": str(s.session_id),
        "user_id": None if s.user_id is None else str(s.user_id),
        "visitor_hash": None if s.visitor_hash is None else s.visitor_hash.hex(),
        "started_at": s.started_at.isoformat(), "last_seen_at": s.last_seen_at.isoformat(),
        "page_count": s.page_count, "event_count": s.event_count,
        "is_app_launch": s.is_app_launch, "browser": s.browser, "os": s.os,
        "device_type": s.device_type, "entry_page": s.entry_page, "exit_page": s.exit_page,
        "referrer": s.referrer, "utm_source": s.utm_source, "utm_medium": s.utm_medium,
        "utm_campaign": s.utm_campaign} for s in segments], separators=(",", ":"))


def join_open_sessions(conn: psycopg.Connection[Any], segments: list[Segment],
                       in_flight: InFlight | None = None) -> None:
    """Give each person's first segment the id of their session still open at its start.

    With ``in_flight``, a session of this process's uncommitted batches wins over the
    database's when it started later (the database cannot see it yet).
    """
    keys = [{"idx": i, "user_id": None if s.user_id is None else str(s.user_id),
             "visitor_hash": None if s.visitor_hash is None else s.visitor_hash.hex(),
             "started_at": s.started_at.isoformat(), "last_seen_at": s.last_seen_at.isoformat()}
            for i, s in enumerate(segments) if s.first_of_key]
    if not keys:
        return
    params = {"keys": json.dumps(keys, separators=(",", ":")), "gap": SESSION_GAP}
    with conn.cursor() as cur:
        cur.execute(FIND_OPEN_SESSIONS, params)
        found = cur.fetchall()
    for idx, session_id, started_at in found:
        segments[idx].session_id = session_id
        if in_flight is not None:
            segments[idx].joined_at = started_at
    if in_flight is not None:
        in_flight.join(segments)


def _is_open_for(started_at: datetime, last_seen_at: datetime, segment: Segment) -> bool:
    return (last_seen_at >= segment.started_at - SESSION_GAP
            and started_at <= segment.last_seen_at + SESSION_GAP)


class InFlight:
    """Sessions this process gave to batches that may not be committed yet.

    The writer finds open sessions for batch N+1 (in the database, on another connection)
    while batch N is still being written: the database cannot see batch N's sessions yet,
    so the process remembers them until the batch is done. The database stays the
    authority for everything committed (other processes' sessions included).
    """

    def __init__(self) -> None:
        #: person → (batch number, session id, started_at, last_seen_at) of their latest segment
        self.entries: dict[Key, tuple[int, uuid.UUID, datetime, datetime]] = {}

    def join(self, segments: list[Segment]) -> None:
        """Continue a session of a batch in flight when it is later than the database's."""
        for segment in segments:
            if not segment.first_of_key:
                continue
            key = session_key(segment.rows[0]) if segment.rows else None
            hit = self.entries.get(key) if key is not None else None
            if hit is None or not _is_open_for(hit[2], hit[3], segment):
                continue
            if segment.joined_at is None or hit[2] >= segment.joined_at:
                segment.session_id = hit[1]

    def remember(self, batch: int, segments: list[Segment]) -> None:
        """Keep each person's latest segment of ``batch`` until that batch is done."""
        for segment in segments:
            if not segment.rows:
                continue
            key = session_key(segment.rows[0])
            if key is None:
                continue
            old = self.entries.get(key)
            if old is None or segment.started_at >= old[2] or old[1] == segment.session_id:
                started = segment.started_at
                last = segment.last_seen_at
                if old is not None and old[1] == segment.session_id:
                    started, last = min(started, old[2]), max(last, old[3])
                self.entries[key] = (batch, segment.session_id, started, last)

    def forget_until(self, batch: int) -> None:
        """Drop what batches up to ``batch`` taught (the database shows them now)."""
        if self.entries:
            self.entries = {k: v for k, v in self.entries.items() if v[0] > batch}


def assign_sessions(conn: psycopg.Connection[Any], rows: list[dict[str, Any]],
                    pings: list[dict[str, Any]],
                    segments: list[Segment] | None = None, *,
                    joined: bool = False) -> list[Segment]:
    """Phase 1, before the events are inserted: record launches, give rows a session_id.

    ``segments`` may be passed when ``segments_of(rows)`` was computed beforehand (the
    writer does that off the database thread); they are re-used as given, and with
    ``joined`` their open sessions were already found too.
    """
    launches = launch_segments(pings)
    if launches:
        with conn.cursor() as cur:
            cur.execute(UPSERT_SESSIONS, {"segments": segments_json(launches)})
    if segments is None:
        segments = segments_of(rows)
    if segments and not joined:
        join_open_sessions(conn, segments)
    for segment in segments:
        for row in segment.rows:
            row["session_id"] = segment.session_id
    return segments


def _recount(segment: Segment, kept: list[dict[str, Any]]) -> Segment:
    """The segment rebuilt from the rows that were really inserted (not duplicates)."""
    fresh = _segment_of(kept, segment.first_of_key)
    fresh.session_id = segment.session_id
    return fresh


def upsert_sessions(conn: psycopg.Connection[Any], segments: list[Segment],
                    inserted: set[Any] | None, encoded: str | None = None) -> int:
    """Phase 2, after the insert: count only the rows inserted (``None``: all of them).

    ``encoded`` is ``segments_json(segments)`` computed beforehand (used when all rows went in).
    """
    if inserted is not None:
        counted = []
        for segment in segments:
            kept = [r for r in segment.rows if r["event_id"] in inserted]
            if len(kept) == len(segment.rows):
                counted.append(segment)
            elif kept:
                counted.append(_recount(segment, kept))
        segments = counted
        encoded = None  # computed for the segments as they were before the recount
    if segments:
        with conn.cursor() as cur:
            cur.execute(UPSERT_SESSIONS, {"segments": encoded or segments_json(segments)})
    return len(segments)


def record_sessions(conn: psycopg.Connection[Any], rows: list[dict[str, Any]],
                    pings: list[dict[str, Any]]) -> int:
    """Both phases at once, for rows known to be new; returns the segments touched."""
    segments = assign_sessions(conn, rows, pings)
    return upsert_sessions(conn, segments, None) + len(launch_segments(pings))
