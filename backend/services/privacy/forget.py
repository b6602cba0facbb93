"""Forget a user: remove every row that names them, everywhere, and hand back a receipt.

The protocol with the event writer (see ``tombstones``): first a tombstone is committed,
then queued events of this process are dropped, then the rows are deleted in one
transaction holding the forget lock exclusively (``waymark.lock_forget_exclusive()``), so an insert that started earlier is waited for
and removed, and one that starts later is filtered out by the tombstone.

What "names the user" means, table by table, read from the catalog at run time so
tables added later are covered too:

* a ``uuid`` column equal to the user id (except generated row ids — columns defaulting
  to ``gen_random_uuid()`` — and ``session_id``: random, never a person) → row deleted;
* a ``bytea`` column equal to the user's visitor hash under any salt still kept
  (current and grace-period previous) → row deleted; tables with ``received_at`` are
  only searched since the oldest kept salt period (hashes cannot be older);
* a JSON column holding a keyed reference to the user (``/measure``'s hashed user id)
  in a recent row → row deleted;
* mentions of the id (or of those hashes in hex) inside text and JSON columns of other
  people's rows (e.g. a parent's event about a student, a profile URL) → replaced by
  ``[forgotten]``;
* in the private ``waymark`` schema (dead letters), rows mentioning the user → deleted.

Error groups lose the user: ``occurrences`` drops by their error rows, ``users_affected``
by one for each group they were counted in. The audit row holds counts only.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from backend.db import Database
from backend.services.privacy import QUERIES, hashing
from backend.services.privacy.tombstones import ADD_TOMBSTONE, LOCK_EXCLUSIVE, TOMBSTONE_TTL

REDACTED = "[forgotten]"
PRIVATE_SCHEMA = "waymark"
PRIVATE_KEEP = ("forgotten_users", "schema_migrations")
NOT_A_PERSON = ("session_id", "class_id")
HASH_LOOKBACK = timedelta(hours=1)

#: every user column of every base table in public and in the private schema.
CATALOG = QUERIES["catalog"]

KEPT_SALTS = QUERIES["kept_salts"]

#: forget changes stored events; anonymize's partition rewrites check this counter
#: (partitions.py) so they never bring a deleted or redacted row back.
BUMP_EDIT_EPOCH = QUERIES["bump_edit_epoch"]
EVENTS_TABLE = "user_activity_events"

DELETE_USER_ERRORS = QUERIES["delete_user_errors"]

#: the user is one person less in each group; their rows are fewer occurrences.
UNCOUNT_ERROR_GROUPS = QUERIES["uncount_error_groups"]

INSERT_AUDIT = QUERIES["insert_audit"]
LOG_FORGET = QUERIES["log_forget"]
FORGET_COMPLETED = QUERIES["forget_completed"]
ALREADY_FORGOTTEN = QUERIES["already_forgotten"]


@dataclass(frozen=True)
class Column:
    """One column of the catalog that may carry a trace of a person."""

    schema: str
    table: str
    name: str
    type: str
    default_expr: str
    has_received_at: bool

    @property
    def qualified(self) -> str:
        """``schema.table``, the key receipts use for non-public tables."""
        return self.table if self.schema == "public" else f"{self.schema}.{self.table}"

    @property
    def is_person_uuid(self) -> bool:
        """A uuid column that can hold a person's id (not a generated row id)."""
        return (self.type == "uuid" and self.name not in NOT_A_PERSON
                and "gen_random_uuid" not in self.default_expr)

    @property
    def is_text(self) -> bool:
        """A column whose text may mention an id."""
        return self.type in ("text", "character varying", "jsonb", "json")


@dataclass
class ForgetReceipt:
    """What a forget removed: rows per table, mentions redacted, queued events dropped."""

    forgotten_at: datetime
    rows_removed: dict[str, int] = field(default_factory=dict)
    mentions_redacted: dict[str, int] = field(default_factory=dict)
    queued_events_dropped: int = 0
    lock_held_seconds: float = 0.0
    seconds: float = 0.0
    already_forgotten: bool = False

    @property
    def total_removed(self) -> int:
        """Rows deleted over all tables."""
        return sum(self.rows_removed.values())

    def as_dict(self) -> dict[str, Any]:
        """The receipt as JSON-ready data (without the user id: the caller adds it)."""
        return {
            "forgotten_at": self.forgotten_at.isoformat(),
            "rows_removed": dict(sorted(self.rows_removed.items())),
            "total_rows_removed": self.total_removed,
            "mentions_redacted": dict(sorted(self.mentions_redacted.items())),
            "queued_events_dropped": self.queued_events_dropped,
            "writers_blocked_ms": round(self.lock_held_seconds * 1000, 1),
            "seconds": round(self.seconds, 3),
            "already_forgotten": self.already_forgotten,
        }


@dataclass(frozen=True)
class Traces:
    """What identifies the user in stored data: the id, and hashes derived from it."""

    user_id: uuid.UUID
    visitor_hashes: list[bytes]
    ref_hexes: list[str]
    since: datetime | None

    @property
    def likes(self) -> list[str]:
        """The same traces as lower-case LIKE patterns."""
        needles = [str(self.user_id), *self.ref_hexes, *(h.hex() for h in self.visitor_hashes)]
        return [f"%{needle.lower()}%" for needle in needles]

    @property
    def pattern(self) -> str:
        """A case-insensitive regex matching any textual trace."""
        return "|".join([str(self.user_id), *self.ref_hexes,
                         *(h.hex() for h in self.visitor_hashes)])


def traces_of(conn: psycopg.Connection[Any], user_id: uuid.UUID) -> Traces:
    """The user's id and the keyed hashes of it under every salt still kept."""
    salts = conn.execute(KEPT_SALTS).fetchall()
    visitor = [hashing.visitor_hash_for_user(bytes(salt), user_id) for _, salt in salts]
    refs = [hashing.reference_hash(bytes(salt), str(user_id)).hex() for _, salt in salts]
    since = salts[0][0] - HASH_LOOKBACK if salts else None
    return Traces(user_id=user_id, visitor_hashes=visitor, ref_hexes=refs, since=since)


def catalog(conn: psycopg.Connection[Any]) -> list[Column]:
    """Every uuid, bytea, text and JSON column of the tables forget looks at."""
    rows = conn.execute(CATALOG, {"private": PRIVATE_SCHEMA}).fetchall()
    columns = [Column(*row) for row in rows]
    return [c for c in columns
            if not (c.schema == PRIVATE_SCHEMA and c.table in PRIVATE_KEEP)
            and not (c.table == "tracking_salts")]


def forget_user(db: Database, user_id: uuid.UUID, *, now: datetime,
                drop_queued: Callable[[uuid.UUID], int] | None = None) -> ForgetReceipt:
    """Remove the user from every table (idempotent) and record a receipt without their id."""
    started = time.perf_counter()
    receipt = ForgetReceipt(forgotten_at=now)
    done = db.fetch_one(ALREADY_FORGOTTEN, {"user_id": user_id})
    if done and done["done"]:
        receipt.already_forgotten = True  # no lock, no scan: a loop of forgets costs nothing
        if drop_queued is not None:
            receipt.queued_events_dropped = drop_queued(user_id)
        receipt.seconds = time.perf_counter() - started
        db.execute(INSERT_AUDIT, {"action": "forget", "details": Jsonb(receipt.as_dict())})
        return receipt
    with db.connection() as conn:
        conn.execute(ADD_TOMBSTONE, {"user_id": user_id, "ttl": TOMBSTONE_TTL})
        conn.execute(LOG_FORGET, {"user_id": user_id})  # so the deletion follows exports
    if drop_queued is not None:
        receipt.queued_events_dropped = drop_queued(user_id)
    with db.connection() as conn:
        traces = traces_of(conn, user_id)
        columns = catalog(conn)
    with db.connection() as conn:
        conn.execute(LOCK_EXCLUSIVE)
        locked = time.perf_counter()
        conn.execute(BUMP_EDIT_EPOCH)  # a partition rewrite must not undo these deletes
        receipt.rows_removed = delete_rows(conn, traces, columns)
    receipt.lock_held_seconds = time.perf_counter() - locked
    receipt.mentions_redacted = redact_mentions(db, traces, columns)
    receipt.seconds = time.perf_counter() - started
    db.execute(INSERT_AUDIT, {"action": "forget", "details": Jsonb(receipt.as_dict())})
    db.execute(FORGET_COMPLETED, {"user_id": user_id})
    return receipt


def delete_rows(conn: psycopg.Connection[Any], traces: Traces,
                columns: list[Column]) -> dict[str, int]:
    """Delete every row naming the user; run inside the transaction holding the lock."""
    removed: Counter[str] = Counter()
    removed["error_events"] += _delete_errors(conn, traces)
    params = naming_params(traces)
    for statement, table in _delete_statements(traces, columns):
        removed[table] += conn.execute(statement, params).rowcount
    return {table: n for table, n in removed.items()}


def _delete_errors(conn: psycopg.Connection[Any], traces: Traces) -> int:
    rows = conn.execute(DELETE_USER_ERRORS, {
        "user_id": traces.user_id, "hashes": traces.visitor_hashes,
        "since": traces.since}).fetchall()
    per_group = Counter(int(r[0]) for r in rows if r[0] is not None)
    if per_group:
        conn.execute(UNCOUNT_ERROR_GROUPS, {"group_ids": list(per_group),
                                            "counts": list(per_group.values())})
    return len(rows)


def naming_conditions(traces: Traces, columns: Iterable[Column]
                      ) -> dict[str, tuple[sql.Identifier, list[sql.Composable]]]:
    """The one catalogue of "what names this person", by table (receipt key → the table and
    the conditions, any of which makes a row theirs). Forget deletes these rows and export
    returns them, so the two cannot disagree.

    A row is theirs when a person column holds their id; when a hash column holds their
    visitor hash under a salt still kept (recent rows only: that is when the hash is
    valid); when a JSON column of a received row holds one of their reference hashes
    (e.g. a ``/measure`` conversion); and, in Waymark's private tables (dead letters…),
    when any text mentions their id or hashes. Parameters: ``user_id``, ``hashes``,
    ``since``, ``likes``, ``pattern`` (:func:`naming_params`).
    """
    found: dict[str, tuple[sql.Identifier, list[sql.Composable]]] = {}
    for col in columns:
        name = sql.Identifier(col.name)
        recent = (sql.SQL(" AND received_at >= %(since)s") if col.has_received_at
                  else sql.SQL(""))
        conditions: list[sql.Composable] = []
        if col.is_person_uuid:
            conditions.append(sql.SQL("{} = %(user_id)s").format(name))
        elif col.type == "bytea" and traces.visitor_hashes:
            conditions.append(sql.SQL("({} = ANY(%(hashes)s){})").format(name, recent))
        elif col.type in ("jsonb", "json") and col.has_received_at and traces.ref_hexes:
            conditions.append(sql.SQL("({}::text LIKE ANY(%(likes)s){})").format(name, recent))
        if col.schema == PRIVATE_SCHEMA and col.is_text:
            conditions.append(sql.SQL("{}::text ~* %(pattern)s").format(name))
        if conditions:
            entry = found.setdefault(col.qualified, (sql.Identifier(col.schema, col.table), []))
            entry[1].extend(conditions)
    return found


def naming_params(traces: Traces) -> dict[str, Any]:
    """The parameters of :func:`naming_conditions`."""
    return {"user_id": traces.user_id, "hashes": traces.visitor_hashes, "since": traces.since,
            "likes": [f"%{h}%" for h in traces.ref_hexes], "pattern": traces.pattern}


def _delete_statements(traces: Traces,
                       columns: Iterable[Column]) -> list[tuple[sql.Composed, str]]:
    return [(sql.SQL("DELETE FROM {} WHERE {}").format(table, sql.SQL(" OR ").join(where)), key)
            for key, (table, where) in naming_conditions(traces, columns).items()]


def redact_mentions(db: Database, traces: Traces, columns: list[Column]) -> dict[str, int]:
    """Replace the user's id (and hashes, in hex) inside other rows' text and JSON.

    One statement (and transaction) per table; this reads whole tables, which is why it
    runs after, not inside, the transaction that blocks the writers.
    """
    by_table: dict[tuple[str, str], list[Column]] = {}
    for col in columns:
        if col.schema == "public" and col.is_text:
            by_table.setdefault((col.schema, col.table), []).append(col)
    redacted: dict[str, int] = {}
    for (schema, table), cols in by_table.items():
        statement = _redact_statement(schema, table, cols)
        with db.connection() as conn:
            if table == EVENTS_TABLE:
                conn.execute(BUMP_EDIT_EPOCH)  # a partition rewrite must not undo this
            count = conn.execute(statement, {"pattern": traces.pattern, "mark": REDACTED,
                                             "likes": traces.likes}).rowcount
        if count:
            redacted[table] = count
    return redacted


def _redact_statement(schema: str, table: str, cols: list[Column]) -> sql.Composed:
    sets = []
    texts = []
    for col in cols:
        name = sql.Identifier(col.name)
        as_text = sql.SQL("{}::text").format(name)
        replaced = sql.SQL("regexp_replace({}, %(pattern)s, %(mark)s, 'gi')").format(as_text)
        if col.type in ("jsonb", "json"):
            replaced = sql.SQL("{}::{}").format(replaced, sql.SQL(col.type))
        sets.append(sql.SQL("{} = CASE WHEN {} ~* %(pattern)s THEN {} ELSE {} END").format(
            name, as_text, replaced, name))
        texts.append(as_text)
    # One cheap substring test per row over all its text (a regex per column is ~3x
    # slower); the regex only runs on the rare rows that match.
    return sql.SQL("UPDATE {} SET {} WHERE lower(concat_ws(' ', {})) LIKE ANY(%(likes)s)").format(
        sql.Identifier(schema, table), sql.SQL(", ").join(sets), sql.SQL(", ").join(texts))
