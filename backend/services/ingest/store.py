"""The store step: a prepared batch into PostgreSQL, in one transaction, on a given connection.

One transaction per batch: ``waymark.lock_forget_shared()`` (the forget contract), a
savepoint, the tombstone filter (``waymark.is_forgotten``), the sessions, a binary COPY of
the events straight into ``user_activity_events`` (through a staging table and ``INSERT … ON
CONFLICT (event_id) DO NOTHING`` when an id is already stored), the error reports, COMMIT.

What fails is told apart by :func:`is_data_error`: a row PostgreSQL refuses as data splits
the batch in halves until that row is alone, and it goes to ``waymark.dead_letters``; any
other exception (a transient failure, or a bug in our code) leaves the transaction rolled
back and is raised to the writer, which keeps the batch and retries it. The store knows
nothing of threads or queues.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from backend.db import rerouted
from backend.services.ingest import copy_payload, error_groups
from backend.services.ingest import session_segments as sessions
from backend.services.ingest.batch import PreparedBatch, Row
from backend.services.ingest.copy_payload import EVENT_COLUMNS, UnencodableRow
from backend.services.ingest.pacing import Contention, Pacer
from backend.services.ingest.statements import QUERIES, with_columns

log = logging.getLogger("waymark.writer")

#: items between two offers of the GIL while encoding (see ``pacing``)
PACE_EVERY = 4

BEGIN_BATCH = QUERIES["begin_batch"]
SAVEPOINT = QUERIES["savepoint_events"]
ROLLBACK_TO_SAVEPOINT = QUERIES["rollback_to_events"]
FORGOTTEN_USERS = QUERIES["forgotten_users"]
COPY_EVENTS = with_columns("copy_events", EVENT_COLUMNS)
CREATE_STAGE = QUERIES["create_stage_events"]
COPY_STAGE = with_columns("copy_stage_events", EVENT_COLUMNS)
INSERT_STAGED = with_columns("insert_staged_events", EVENT_COLUMNS)
DEAD_LETTER = QUERIES["dead_letter"]

#: SQLSTATE classes of the errors that are the data's fault: 22 "data exception" (a value
#: the column's type refuses: invalid text for an enum, out of range, a NUL in jsonb text…)
#: and 23 "integrity constraint violation" (CHECK, NOT NULL, foreign key, unique).
DATA_ERROR_CLASSES = ("22", "23")


def is_data_error(exc: BaseException) -> bool:
    """Whether ``exc`` means "this batch holds a row that cannot be stored" (dead-letter it).

    Exactly: an error PostgreSQL reported with a SQLSTATE of class 22 (data exception) or
    23 (integrity constraint violation) — psycopg's ``DataError`` and ``IntegrityError``
    families as the server raised them — or :class:`copy_payload.UnencodableRow` (one
    column's value psycopg cannot send as that column's type; it never reached the server).
    Everything else is not the data's fault: transient failures (``backend.db.is_transient``)
    and bugs in our code — any other Python exception, a ``ProgrammingError`` such as an
    undefined column (class 42), an internal error (XX), a failed transaction (25) — which
    the writer logs, counts and retries, never dead-letters.
    """
    if isinstance(exc, UnencodableRow):
        return True
    if not isinstance(exc, psycopg.Error) or rerouted(exc):
        return False  # a partition's constraint: retried, not the row's fault (db.rerouted)
    sqlstate = exc.sqlstate
    return sqlstate is not None and sqlstate[:2] in DATA_ERROR_CLASSES


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, uuid.UUID | datetime):
        return str(value)
    return value


class Store:
    """Writes prepared batches on the connection it is given; counts into ``counters``."""

    def __init__(self, counters: Counter[str], contention: Contention,
                 dead_letter_cap: int = 10_000) -> None:
        self.counters = counters
        self.contention = contention
        self.dead_letter_cap = dead_letter_cap

    def write(self, conn: psycopg.Connection[Any], pending: list[PreparedBatch]) -> None:
        """Write every batch of ``pending`` (a stack: the last is written first), popping each
        once it is committed or dead-lettered.

        A data error replaces the batch by its two halves, down to the single bad row. Any
        other exception is raised with ``pending`` holding what is still to be written, so
        a retry neither writes twice what was committed nor loses what was not.
        """
        while pending:
            batch = pending[-1]
            try:
                self.write_batch(conn, batch)
            except Exception as exc:
                if not is_data_error(exc) or not len(batch):
                    raise
                if len(batch) > 1:
                    log.warning("waymark writer: %s in a batch of %d; splitting it",
                                _first_line(exc), len(batch))
                    first, second = batch.halves()
                    pending[-1:] = [second, first]
                    continue
                self._dead_letter(conn, batch, exc)
            pending.pop()

    def write_batch(self, conn: psycopg.Connection[Any], batch: PreparedBatch) -> None:
        """One transaction: lock, tombstone filter, sessions, events, errors.

        Events are COPYed straight into the table — as fast as PostgreSQL takes rows —
        after a savepoint. If one of them is already stored (a client's retry, or another
        process's copy of it), the COPY fails with a unique violation: back to the savepoint,
        then COPY into a staging table and ``INSERT … ON CONFLICT DO NOTHING
        RETURNING``. Either way only rows really inserted are counted in their sessions.
        """
        events = batch.events  # one row per event_id: the preparing step saw to that
        pings = batch.pings
        segments, joined, payload = batch.segments, batch.joined, batch.payload
        with _transaction(conn, BEGIN_BATCH) as tombstones, conn.cursor() as cur:
            if tombstones and (events or pings):
                # every row the writer makes passes the tombstone: an app-launch ping
                # must not recreate the session of someone forgotten a moment ago
                kept, kept_pings = self._not_forgotten(cur, events), \
                    self._not_forgotten(cur, pings)
                if len(kept) < len(events) or len(kept_pings) < len(pings):
                    events, pings, segments, joined, payload = kept, kept_pings, None, None, None
            assigned = sessions.assign_sessions(conn, events, pings, segments,
                                                joined=joined is not None)
            inserted = self._insert_events(cur, events, bool(pings), payload)
            written = len(events) if inserted is None else len(inserted)
            touched = sessions.upsert_sessions(
                conn, assigned, None if written == len(events) else inserted, joined)
            errors = error_groups.write_errors(conn, batch.errors)
        self.counters["written"] += written
        self.counters["duplicates"] += len(batch.events) - written
        self.counters["errors_written"] += errors
        self.counters["sessions_touched"] += touched + len(pings)
        self.counters["batches"] += 1

    def _insert_events(self, cur: psycopg.Cursor[Any], events: list[Row], pings: bool,
                       payload: bytes | None = None) -> set[Any] | None:
        """COPY the events in; None when all went in directly, else the ids really inserted.

        ``payload`` is their COPY prepared beforehand (``copy_payload.encode``), else it is
        made here, after their session ids were given.
        """
        if not events:
            return None
        if payload is None:
            # inside the transaction: offers of the GIL, never a rest (see ``pacing``)
            payload = copy_payload.encode(events, Pacer(self.contention, rests=False),
                                          PACE_EVERY)
        if pings:  # the launches were upserted after BEGIN_BATCH's savepoint: keep them
            cur.execute(SAVEPOINT)
        try:
            with cur.copy(COPY_EVENTS) as copy:
                copy.write(payload)
            return None
        except psycopg.errors.UniqueViolation:
            cur.execute(ROLLBACK_TO_SAVEPOINT)
        self.counters["conflict_fallbacks"] += 1
        cur.execute(CREATE_STAGE)
        with cur.copy(COPY_STAGE) as copy:
            copy.write(payload)
        cur.execute(INSERT_STAGED)
        return {event_id for (event_id,) in cur.fetchall()}

    @staticmethod
    def _not_forgotten(cur: psycopg.Cursor[Any], events: list[Row]) -> list[Row]:
        """The rows not of a user forgotten a moment ago (``waymark.is_forgotten``, under
        the lock)."""
        users = list({r["user_id"] for r in events if r.get("user_id") is not None})
        if not users:
            return events
        cur.execute(FORGOTTEN_USERS, (users,))
        gone = {user_id for (user_id,) in cur.fetchall()}
        return [r for r in events if r.get("user_id") not in gone] if gone else events

    def _dead_letter(self, conn: psycopg.Connection[Any], batch: PreparedBatch,
                     exc: BaseException) -> None:
        """Set one refused row aside with its SQLSTATE (NULL: it never reached the server)."""
        kind, row = batch.kinds()[0]
        sqlstate = exc.sqlstate if isinstance(exc, psycopg.Error) else None
        try:
            payload: str | None = json.dumps(
                {k: _jsonable(v) for k, v in row.items() if not k.startswith("_")}, default=str)
        except (TypeError, ValueError):
            payload = None
        params = {"kind": kind, "sqlstate": sqlstate, "error": str(exc)[:2000],
                  "payload": payload, "cap": self.dead_letter_cap}
        try:
            with conn.transaction():
                kept = conn.execute(DEAD_LETTER, params).rowcount
        except psycopg.Error as dl_exc:
            if not is_data_error(dl_exc):  # the payload itself may be refused as jsonb
                raise
            params["payload"] = None
            with conn.transaction():
                kept = conn.execute(DEAD_LETTER, params).rowcount
        if not kept:  # the table is full: a flood of bad rows must not fill the disk
            self.counters["dead_letters_over_cap"] += 1
            log.error("waymark writer: a refused %s row was dropped: waymark.dead_letters "
                      "holds WAYMARK_DEAD_LETTER_CAP (%d) rows", kind, self.dead_letter_cap)
            return
        self.counters["dead_lettered"] += 1
        log.error("waymark writer: a %s row was refused (SQLSTATE %s: %s); "
                  "see waymark.dead_letters", kind, sqlstate, exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def _transaction(conn: psycopg.Connection[Any], begin: str) -> Iterator[Any]:
    """A transaction whose BEGIN travels with its first statements; yields their answer.

    Whatever fails — those first statements included — the transaction is rolled back, so
    the connection is never left inside a failed transaction for the next batch.
    """
    try:
        cur = conn.execute(begin)
        while cur.nextset():  # the answer of the last statement
            pass
        row = cur.fetchone() if cur.pgresult is not None and cur.description else None
        yield row[0] if row else None
    except BaseException:
        _rollback(conn)
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _rollback(conn: psycopg.Connection[Any]) -> None:
    if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # the connection is broken; the writer drops it and opens another

