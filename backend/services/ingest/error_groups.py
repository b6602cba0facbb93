"""Error reports: a fingerprint per kind of error, ``error_events`` rows and ``error_groups`` counts.

The fingerprint is what makes "the same error" the same: its type, its message with the
variable parts (numbers, ids, quoted values, URLs) normalised away, and its top stack frames
without line numbers or build hashes. The writer calls :func:`write_errors` with a batch of
rows that already went through the privacy step; one set-based pass upserts the groups,
counts newly affected people, inserts the errors and marks their sessions ``has_error``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import psycopg

from backend.services.privacy.tombstones import NOT_FORGOTTEN

TOP_FRAMES = 3

_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
_HEX = re.compile(r"\b(?:0x)?[0-9a-f]{8,}\b", re.I)
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_SPACE = re.compile(r"\s+")
_FRAME = re.compile(r"^\s*(at\s|File\s|\S*@\S)")
_LINE_COL = re.compile(r":\d+(?::\d+)?")
_QUERY = re.compile(r"[?#][^\s)]*")
_BUILD_HASH = re.compile(r"[.-][0-9a-f]{6,}(?=\.)", re.I)
_PATH_ID = re.compile(r"/(?:\d+|[0-9a-f]{8}-[0-9a-f-]{27,})(?=/|$)", re.I)

ERROR_COLUMNS = ("error_id", "occurred_at", "received_at", "user_id", "visitor_hash",
                 "error_type", "message", "stack", "component_name", "page_path",
                 "api_endpoint", "http_method", "status_code", "source", "browser", "os",
                 "device_type", "event_data", "fingerprint")
ERROR_TYPES_SQL = ("uuid", "timestamptz", "timestamptz", "uuid", "bytea", "text", "text", "text",
                   "text", "text", "text", "text", "int2", "text", "text", "text", "text",
                   "jsonb", "text")

CREATE_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS wm_stage_errors
    (LIKE public.error_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
"""

DROP_KNOWN = f"""
DELETE FROM wm_stage_errors s
WHERE EXISTS (SELECT 1 FROM public.error_events e WHERE e.error_id = s.error_id)
   OR NOT {NOT_FORGOTTEN}
"""  # noqa: S608 - a constant predicate, no values

UPSERT_GROUPS = """
INSERT INTO public.error_groups AS g (fingerprint, error_type, message, component_name,
                                      api_endpoint, first_seen, last_seen, occurrences)
SELECT fingerprint, min(error_type), min(message), min(component_name), min(api_endpoint),
       min(occurred_at), max(occurred_at), count(*)
FROM wm_stage_errors GROUP BY fingerprint
ON CONFLICT (fingerprint) DO UPDATE SET
    first_seen = least(g.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(g.last_seen, EXCLUDED.last_seen),
    occurrences = g.occurrences + EXCLUDED.occurrences
"""

#: people (user id, else visitor hash) in this batch not yet seen in their group.
COUNT_NEW_PEOPLE = """
UPDATE public.error_groups g SET users_affected = g.users_affected + n.people
FROM (
    SELECT gg.group_id, count(DISTINCT p.person) AS people
    FROM (SELECT fingerprint,
                 coalesce(user_id::text, encode(visitor_hash, 'hex')) AS person
          FROM wm_stage_errors) AS p
    JOIN public.error_groups gg USING (fingerprint)
    WHERE p.person IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM public.error_events e
          WHERE e.group_id = gg.group_id
            AND coalesce(e.user_id::text, encode(e.visitor_hash, 'hex')) = p.person)
    GROUP BY gg.group_id
) AS n
WHERE g.group_id = n.group_id
"""

INSERT_ERRORS = """
WITH inserted AS (
    INSERT INTO public.error_events (error_id, occurred_at, received_at, user_id, visitor_hash,
        session_id, error_type, message, stack, component_name, page_path, api_endpoint,
        http_method, status_code, source, browser, os, device_type, event_data, fingerprint,
        group_id)
    SELECT s.error_id, s.occurred_at, s.received_at, s.user_id, s.visitor_hash,
           (SELECT us.session_id FROM public.user_sessions us
            WHERE ((s.user_id IS NOT NULL AND us.user_id = s.user_id)
                OR (s.user_id IS NULL AND us.user_id IS NULL AND us.visitor_hash = s.visitor_hash))
              AND us.started_at <= s.occurred_at + interval '30 minutes'
              AND us.last_seen_at >= s.occurred_at - interval '30 minutes'
            ORDER BY us.last_seen_at DESC LIMIT 1),
           s.error_type, s.message, s.stack, s.component_name, s.page_path, s.api_endpoint,
           s.http_method, s.status_code, s.source, s.browser, s.os, s.device_type, s.event_data,
           s.fingerprint, g.group_id
    FROM wm_stage_errors s JOIN public.error_groups g USING (fingerprint)
    ON CONFLICT (error_id) DO NOTHING
    RETURNING session_id
)
UPDATE public.user_sessions us SET has_error = true
FROM (SELECT DISTINCT session_id FROM inserted WHERE session_id IS NOT NULL) AS i
WHERE us.session_id = i.session_id AND NOT us.has_error
"""

COUNT_STAGED = "SELECT count(*) FROM wm_stage_errors"


def normalise_message(message: str | None) -> str:
    """A message with its variable parts replaced, so one bug gives one group."""
    if not message:
        return ""
    text = _URL.sub("<url>", message)
    text = _UUID.sub("<uuid>", text)
    text = _QUOTED.sub("<str>", text)
    text = _HEX.sub("<hex>", text)
    text = _NUMBER.sub("<n>", text)
    return _SPACE.sub(" ", text).strip()[:500]


def top_frames(stack: str | None, count: int = TOP_FRAMES) -> list[str]:
    """The first stack frames without line/column numbers, query strings or build hashes."""
    if not stack:
        return []
    frames = []
    for line in stack.splitlines():
        if not _FRAME.match(line):
            continue
        frame = _QUERY.sub("", line.strip())
        frame = _LINE_COL.sub("", frame)
        frames.append(_BUILD_HASH.sub("", frame))
        if len(frames) == count:
            break
    return frames


def normalise_endpoint(endpoint: str | None) -> str:
    """An API path with numeric and uuid segments replaced (``/quests/<id>/start``)."""
    if not endpoint:
        return ""
    return _PATH_ID.sub("/<id>", _QUERY.sub("", endpoint))


def fingerprint(row: dict[str, Any]) -> str:
    """The grouping key of an error report (hex SHA-256, 32 characters)."""
    parts = [str(row.get("error_type") or ""), normalise_message(row.get("message"))]
    parts.extend(top_frames(row.get("stack")))
    if row.get("error_type") == "api_error":
        parts.extend([str(row.get("http_method") or ""), normalise_endpoint(row.get("api_endpoint")),
                      str(row.get("status_code") or "")])
    if len(parts) == 2 and not parts[1]:
        parts.append(str(row.get("component_name") or ""))
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def write_errors(conn: psycopg.Connection[Any], rows: list[dict[str, Any]]) -> int:
    """Store a batch of error rows in the caller's transaction; returns how many were new."""
    if not rows:
        return 0
    for row in rows:
        row.setdefault("fingerprint", fingerprint(row))
    with conn.cursor() as cur:
        cur.execute(CREATE_STAGE)
        with cur.copy(f"COPY wm_stage_errors ({', '.join(ERROR_COLUMNS)}) "  # noqa: S608
                      "FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(ERROR_TYPES_SQL))
            for row in rows:
                copy.write_row(tuple(row.get(name) for name in ERROR_COLUMNS))
        cur.execute(DROP_KNOWN)
        cur.execute(COUNT_STAGED)
        staged = cur.fetchone()
        fresh = int(staged[0]) if staged else 0
        if fresh:
            cur.execute(UPSERT_GROUPS)
            cur.execute(COUNT_NEW_PEOPLE)
            cur.execute(INSERT_ERRORS)
    return fresh
