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

from backend.services.ingest.copy_payload import ENCODING_ERRORS, unencodable
from backend.services.ingest.statements import QUERIES, with_columns
from backend.taxonomy import SESSION_GAP

TOP_FRAMES = 3
MESSAGE_HEAD = 600  # characters of a message that grouping reads (it keeps 500)
MESSAGE_KEEP = 500
ENDPOINT_HEAD = 500  # characters of an API path read (a real one is well under 200; an
#                      unbounded read let a 2,000-character "?\n/…" path cost 3× a report)
STACK_HEAD = 4000  # characters of a stack, and at most STACK_LINES lines, searched for frames
STACK_LINES = 40
FRAME_HEAD = 300  # characters of one frame line (a real frame is well under 200)

# Every pattern here runs on client text inside the writer, so each must be linear in its
# input, with a small constant (bench.redos: the worst report costs ~1.8× a normal one).
#
# A URL is ``\b[a-z][a-z0-9+.-]{0,19}://\S+`` (a scheme of at most 20 characters: an
# unbounded one made "a-a-a-…" O(n²)). Read forwards, that still makes every word start in
# a run like "a-a-a-…" scan 20 characters for "://" (the red-team finding, 2.5×). So the
# URL pass runs on the reversed text, where a URL starts at a token's start and is anchored
# on "//:": each token is read once, and only a "://" costs a look at the 20 characters of
# its scheme. Same matches, leftmost first (test_error_groups checks it against the
# forward pattern).
_URL_REVERSED = re.compile(r"(?<!\S)\S+//:[a-z0-9+.-]{0,19}[a-z]\b", re.I)
# The other patterns start with the class of their first character and check the word
# boundary before it with a lookbehind (``(?<!\w.)`` after that character is ``\b``
# before it): a pattern that starts with a class lets the engine skip the characters
# outside it, where a leading ``\b`` is tried at every position.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
# A uuid (``\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b``, the first
# alternative) or else a hex part (``\b(?:0x)?[0-9a-f]{8,}\b``), case-insensitive, in one
# pass: both start at the same characters, and a text of digits made each of two passes
# try every one of them. One pass gives what the two gave one after the other: a hex part
# is made of word characters only, so no uuid can start inside it or right after it
# (test_error_groups checks it against the two patterns applied in turn). Two things keep
# each try short without changing a match: the letters are spelt in both cases rather than
# matched with re.I (which folds the case of every character it reads; no other character
# folds to a-f or x), and a run of digits is taken whole (``{7,}+``, ``*+``: possessive),
# since a shorter run is followed by a digit, so it cannot end at a word boundary either
# and giving characters back only repeated the failure ("00a" in "a 00a 00a…").
_UUID_OR_HEX = re.compile(
    r"[0-9a-fA-F](?<!\w.)(?:(?P<uuid>[0-9a-fA-F]{7}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12})|(?<=0)[xX][0-9a-fA-F]{8,}+|[0-9a-fA-F]{7,}+)(?!\w)")
# ``\b\d+(?:\.\d+)?\b``
_NUMBER = re.compile(r"\d(?<!\w.)\d*+(?:\.\d++)?(?!\w)")
# matched on the line without its leading whitespace (``^\s*`` first made a 4,000-space
# line try the alternatives at each of its positions on the way back)
_FRAME = re.compile(r"at\s|File\s|\S*@\S")
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

#: the statements (queries.sql), in the order ``write_errors`` runs them
CREATE_STAGE = QUERIES["create_stage_errors"]
COPY_STAGE = with_columns("copy_stage_errors", ERROR_COLUMNS)
DROP_KNOWN = QUERIES["drop_known_errors"]
COUNT_STAGED = QUERIES["count_staged_errors"]
UPSERT_GROUPS = QUERIES["upsert_error_groups"]
COUNT_NEW_PEOPLE = QUERIES["count_new_people"]
INSERT_ERRORS = QUERIES["insert_errors"]


#: While the passes run, each replaced part is one placeholder character, spelt out at the
#: end: a digit or a quote pair every few characters would otherwise triple the text that
#: the later passes read. They are Unicode noncharacters (reserved for a program's internal
#: use); like ``<`` and ``>`` they are not word characters, so no later pass matches
#: differently next to them. A client that sends one gets its spelt-out token, as if it
#: had typed ``<url>``.
PLACEHOLDERS = {"\ufdd0": "<url>", "\ufdd1": "<uuid>", "\ufdd2": "<str>", "\ufdd3": "<hex>",
                "\ufdd4": "<n>"}
_URL_MARK, _UUID_MARK, _STR_MARK, _HEX_MARK, _NUMBER_MARK = PLACEHOLDERS
#: Grouping reads a message up to its 64th quoted string and up to its 64th number: a
#: message with more is cut after that part. Each replacement is the main cost of its
#: pass, so a message made of numbers or empty quote pairs (up to 300 in the head) cost
#: ~3× a normal one; a real message's shape is set long before its 64th number. (A cut
#: placeholder stands for a whole part, so nothing the kept parts hold is lost.)
MAX_PARTS = 64


def _up_to_part(text: str, replaced: int, mark: str) -> str:
    """``text`` cut after its ``MAX_PARTS``-th ``mark`` once a pass replaced that many."""
    if replaced < MAX_PARTS:
        return text
    rest = text.split(mark, MAX_PARTS)[-1]
    return text[:len(text) - len(rest)]


def _uuid_or_hex_mark(match: re.Match[str]) -> str:
    return _HEX_MARK if match.group("uuid") is None else _UUID_MARK


def normalise_message(message: str | None) -> str:
    """A message with its variable parts replaced, so one bug gives one group.

    Only the head of the message is read, up to its ``MAX_PARTS``-th quoted string or
    number: the result keeps 500 characters anyway, and a bounded input bounds the work a
    hostile client can make the writer do per report.
    """
    if not message:
        return ""
    text = _URL_REVERSED.sub(_URL_MARK, message[:MESSAGE_HEAD][::-1])[::-1]
    text = _up_to_part(*_QUOTED.subn(_STR_MARK, text, count=MAX_PARTS), _STR_MARK)
    text = _UUID_OR_HEX.sub(_uuid_or_hex_mark, text)  # (a uuid holds no quote)
    text = _up_to_part(*_NUMBER.subn(_NUMBER_MARK, text, count=MAX_PARTS), _NUMBER_MARK)
    text = " ".join(text.split())  # whitespace runs collapsed, ends stripped: one C pass
    for mark, token in PLACEHOLDERS.items():
        text = text.replace(mark, token)
    return text[:MESSAGE_KEEP]


def top_frames(stack: str | None, count: int = TOP_FRAMES) -> list[str]:
    """The first stack frames without line/column numbers, query strings or build hashes."""
    if not stack:
        return []
    frames = []
    for line in stack[:STACK_HEAD].splitlines()[:STACK_LINES]:
        if not _FRAME.match(line.lstrip()):
            continue
        frame = _QUERY.sub("", line.strip()[:FRAME_HEAD])
        frame = _LINE_COL.sub("", frame)
        frames.append(_BUILD_HASH.sub("", frame))
        if len(frames) == count:
            break
    return frames


def normalise_endpoint(endpoint: str | None) -> str:
    """An API path with numeric and uuid segments replaced (``/quests/<id>/start``)."""
    if not endpoint:
        return ""
    return _PATH_ID.sub("/<id>", _QUERY.sub("", endpoint[:ENDPOINT_HEAD]))


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
        with cur.copy(COPY_STAGE) as copy:
            copy.set_types(list(ERROR_TYPES_SQL))
            for row in rows:
                values = tuple(row.get(name) for name in ERROR_COLUMNS)
                try:
                    copy.write_row(values)
                except ENCODING_ERRORS as exc:
                    bad = unencodable(values, ERROR_TYPES_SQL, ERROR_COLUMNS, exc)
                    if bad is None:
                        raise
                    raise bad from exc
        cur.execute(DROP_KNOWN)
        cur.execute(COUNT_STAGED)
        staged = cur.fetchone()
        fresh = int(staged[0]) if staged else 0
        if fresh:
            cur.execute(UPSERT_GROUPS)
            cur.execute(COUNT_NEW_PEOPLE)
            cur.execute(INSERT_ERRORS, {"gap": SESSION_GAP})
    return fresh
