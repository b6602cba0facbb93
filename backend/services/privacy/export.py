"""Export: everything stored about one user, as a JSON document streamed piece by piece.

"About the user" is exactly what ``forget`` deletes: the rows of
:func:`forget.naming_conditions`, one catalogue for both, in every table forget looks at
(read from the database's catalog, so tables added later are included), keyed as forget's
receipt keys them — so the export's counts equal the receipt's, table by table. Rows are
read with Waymark's own connection, not the caller's: some rows about them (an anonymous
visit under their visitor hash, an admin-only rollup) are not theirs to read through RLS,
yet are theirs to see. The plan is only ever built for the verified caller's own id (the
route takes no user id). Rows are read through a server-side cursor and written out in
chunks, so a long history never sits in memory. Shape::

    {"user_id": "...", "exported_at": "...", "tables": {"user_activity_events": [{...}, ...], ...},
     "counts": {"user_activity_events": 123, ...}}
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from backend.db import Database
from backend.services.privacy import QUERIES
from backend.services.privacy.forget import (
    Traces,
    catalog,
    naming_conditions,
    naming_params,
    traces_of,
)

CHUNK_CHARS = 64 * 1024
CURSOR_ROWS = 2000

INSERT_AUDIT = QUERIES["insert_audit"]


def export_plan(conn: psycopg.Connection[Any], traces: Traces) -> list[tuple[str, sql.Composed]]:
    """One ``SELECT to_jsonb(row)`` per table that can hold rows about the user."""
    return [(key, sql.SQL("SELECT to_jsonb(t) FROM {} AS t WHERE {}").format(
        table, sql.SQL(" OR ").join(where)))
        for key, (table, where) in naming_conditions(traces, catalog(conn)).items()]


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


def stream_export(db: Database, plan: ExportPlan, *, now: datetime) -> Iterator[str]:
    """Yield the export document in chunks; writes an audit row (counts only) at the end."""
    params = naming_params(plan.traces)
    counts: dict[str, int] = {}
    buffer: list[str] = [
        '{"user_id": ', json.dumps(str(plan.user_id)),
        ', "exported_at": ', json.dumps(now.isoformat()), ', "tables": {',
    ]
    size = 0
    for index, (table, statement) in enumerate(plan.statements):
        buffer.append(("," if index else "") + json.dumps(table) + ": [")
        counts[table] = 0
        for doc in _rows(db, statement, params):
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


def _rows(db: Database, statement: sql.Composed, params: dict[str, Any]) -> Iterator[Any]:
    with db.connection() as conn, conn.cursor(name="waymark_export") as cur:
        cur.itersize = CURSOR_ROWS
        cur.execute(statement, params)
        for (doc,) in cur:
            yield doc
