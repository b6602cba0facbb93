"""The ingest package's SQL, loaded once by name from ``queries.sql`` beside this module.

Statements whose column list comes from a Python tuple (``EVENT_COLUMNS``,
``ERROR_COLUMNS``) hold a ``{columns}`` placeholder; :func:`with_columns` fills it with
quoted identifiers (psycopg.sql), so no SQL is ever built by string formatting. It renders
the statement once, at import: composing it again for each batch was a twentieth of the
database thread's Python time per durable commit.
"""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import sql

from backend.queries import Queries

QUERIES = Queries.load("backend.services.ingest")


def with_columns(name: str, columns: Iterable[str]) -> bytes:
    """The statement ``name`` with its ``{columns}`` replaced by ``columns``, quoted."""
    return sql.SQL(QUERIES[name]).format(
        columns=sql.SQL(", ").join(sql.Identifier(column) for column in columns)).as_bytes()
