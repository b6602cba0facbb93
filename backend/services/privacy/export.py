"""Export: everything stored about one user, as a JSON document streamed piece by piece.

"About the user" is exactly what ``forget`` would delete: rows whose person columns hold
their id, or whose hash columns hold their visitor hash under a salt still kept, in every
table of ``public`` (read from the catalog, so tables added later are included). Rows
are read through a server-side cursor and written out in chunks, so a long history never
sits in memory. Shape::

    {"user_id": "...", "exported_at": "...", "tables": {"user_activity_events": [{...}, ...], ...},
     "counts": {"user_activity_events": 123, ...}}
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from backend.db import Database
from backend.services.privacy import QUERIES
from backend.services.privacy.forget import Column, Traces, catalog, traces_of

CHUNK_CHARS = 64 * 1024
CURSOR_ROWS = 2000

INSERT_AUDIT = QUERIES["insert_audit"]


def export_plan(conn: psycopg.Connection[Any], traces: Traces) -> list[tuple[str, sql.Composed]]:
    """One ``SELECT to_jsonb(row)`` per public table that can hold rows about the user."""
    by_table: dict[str, list[sql.Composable]] = {}
    for col in catalog(conn):
        if col.schema != "public":
            continue
        condition = _condition(col, traces)
        if condition is not None:
            by_table.setdefault(col.table, []).append(condition)
    return [(table, sql.SQL("SELECT to_jsonb(t) FROM {} AS t WHERE {}").format(
        sql.Identifier("public", table), sql.SQL(" OR ").join(conditions)))
        for table, conditions in by_table.items()]


def _condition(col: Column, traces: Traces) -> sql.Composable | None:
    name = sql.Identifier("t", col.name)
    if col.is_person_uuid:
        return sql.SQL("{} = %(user_id)s").format(name)
    if col.type == "bytea" and traces.visitor_hashes:
        if col.has_received_at:  # hashes are recent: lets the BRIN on received_at help
            return sql.SQL("({} = ANY(%(hashes)s) AND {} >= %(since)s)").format(
                name, sql.Identifier("t", "received_at"))
        return sql.SQL("{} = ANY(%(hashes)s)").format(name)
    return None


@dataclass(frozen=True)
class ExportPlan:
    """Which statements read the user's rows, decided before the first byte is sent."""

    user_id: uuid.UUID
    traces: Traces
    statements: list[tuple[str, sql.Composed]]


def prepare_export(db: Database, user_id: uuid.UUID) -> ExportPlan:
    """Look up the user's traces and the tables to read (errors surface here, not mid-stream)."""
    with db.connection() as conn:
        traces = traces_of(conn, user_id)
        return ExportPlan(user_id=user_id, traces=traces, statements=export_plan(conn, traces))


def export_user(db: Database, user_id: uuid.UUID, *, now: datetime) -> Iterator[str]:
    """The whole export of one user, in chunks (see ``stream_export``)."""
    return stream_export(db, prepare_export(db, user_id), now=now)


def stream_export(db: Database, plan: ExportPlan, *, now: datetime,
                  as_caller: Mapping[str, Any] | None = None) -> Iterator[str]:
    """Yield the export document in chunks; writes an audit row (counts only) at the end.

    With ``as_caller`` (the caller's verified claims) the rows are read as that caller,
    so the RLS policies check the filter: a bug here could not leak someone else's row.
    """
    params = {"user_id": plan.user_id, "hashes": plan.traces.visitor_hashes,
              "since": plan.traces.since}
    counts: dict[str, int] = {}
    buffer: list[str] = [
        '{"user_id": ', json.dumps(str(plan.user_id)),
        ', "exported_at": ', json.dumps(now.isoformat()), ', "tables": {',
    ]
    size = 0
    for index, (table, statement) in enumerate(plan.statements):
        buffer.append(("," if index else "") + json.dumps(table) + ": [")
        counts[table] = 0
        for doc in _rows(db, statement, params, as_caller):
            buffer.append(("," if counts[table] else "") + json.dumps(doc, default=str))
            counts[table] += 1
            size += len(buffer[-1])
            if size >= CHUNK_CHARS:
                yield "".join(buffer)
                buffer, size = [], 0
        buffer.append("]")
    buffer.append('}, "counts": ' + json.dumps(counts) + "}\n")
    yield "".join(buffer)
    db.execute(INSERT_AUDIT, {"action": "export", "details": Jsonb({"rows": counts, "total": sum(counts.values())})})


def _rows(db: Database, statement: sql.Composed, params: dict[str, Any],
          as_caller: Mapping[str, Any] | None) -> Iterator[Any]:
    connection = db.as_user(as_caller) if as_caller is not None else db.connection()
    with connection as conn, conn.cursor(name="waymark_export") as cur:
        cur.itersize = CURSOR_ROWS
        cur.execute(statement, params)
        for (doc,) in cur:
            yield doc
