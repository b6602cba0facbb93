"""Incremental warehouse exports: day-partitioned Parquet or NDJSON, schemas, deletions.

What leaves is exactly what the tables hold after the privacy step (there never was a raw
IP address or user agent to export). One column list per table decides the SELECT, the
Parquet schema and the BigQuery schema, so the three cannot drift apart.

Incremental by receipt time: each target (a ``--to`` location) has a watermark per table;
a run exports rows received in ``[watermark, now − settle)`` and moves the watermark. The
settle margin lets requests still being committed land first (a batch is committed within
``WAYMARK_ACK_TIMEOUT`` in the default mode). Files are named after the window's start, so
a run that dies before saving its watermark is repeated by the next one over the same
files, never beside them. Rows and deletions are read in one snapshot: a forget that
commits during the run is either in the data's absence or in the next manifest.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from backend.services.exports import QUERIES

FORMATS = ("parquet", "ndjson")
DELETIONS = "_deletions"  # the watermark row of a target's deletion manifests
FETCH_ROWS = 20_000
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Kind:
    """How one PostgreSQL type leaves: the SELECT expression, Arrow and BigQuery types."""

    select: str  # with {c} for the column
    arrow: pa.DataType
    bigquery: str


KINDS = {
    "uuid": Kind("{c}::text", pa.string(), "STRING"),
    "text": Kind("{c}::text", pa.string(), "STRING"),  # enums leave as their labels
    "json": Kind("{c}::text", pa.string(), "STRING"),  # JSON text: PARSE_JSON in BigQuery
    "timestamp": Kind("{c}", pa.timestamp("us", tz="UTC"), "TIMESTAMP"),
    "bytes": Kind("{c}", pa.binary(), "BYTES"),
    "int16": Kind("{c}", pa.int16(), "INT64"),
    "int32": Kind("{c}", pa.int32(), "INT64"),
    "int64": Kind("{c}", pa.int64(), "INT64"),
}

#: The one column list: every exported table and its columns, in table order.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "user_activity_events": (
        ("event_id", "uuid"), ("occurred_at", "timestamp"), ("received_at", "timestamp"),
        ("user_id", "uuid"), ("visitor_hash", "bytes"), ("network_hash", "bytes"),
        ("session_id", "uuid"), ("event_type", "text"), ("event_category", "text"),
        ("page_path", "text"), ("page_title", "text"), ("referrer", "text"),
        ("utm_source", "text"), ("utm_medium", "text"), ("utm_campaign", "text"),
        ("duration_ms", "int32"), ("load_time_ms", "int32"), ("status_code", "int16"),
        ("source", "text"), ("event_data", "json"), ("browser", "text"), ("os", "text"),
        ("device_type", "text"), ("anonymized_at", "timestamp"),
    ),
    "error_events": (
        ("error_id", "uuid"), ("occurred_at", "timestamp"), ("received_at", "timestamp"),
        ("user_id", "uuid"), ("visitor_hash", "bytes"), ("session_id", "uuid"),
        ("error_type", "text"), ("message", "text"), ("stack", "text"),
        ("component_name", "text"), ("page_path", "text"), ("api_endpoint", "text"),
        ("http_method", "text"), ("status_code", "int16"), ("source", "text"),
        ("browser", "text"), ("os", "text"), ("device_type", "text"), ("event_data", "json"),
        ("fingerprint", "text"), ("group_id", "int64"), ("anonymized_at", "timestamp"),
    ),
}

DELETION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("deletion_id", "int64"), ("logged_at", "timestamp"), ("action", "text"),
    ("user_ref", "text"), ("cutoff", "timestamp"), ("collect_cutoff", "timestamp"),
)


def arrow_schema(columns: tuple[tuple[str, str], ...]) -> pa.Schema:
    return pa.schema([pa.field(name, KINDS[kind].arrow) for name, kind in columns])


def bigquery_schema(columns: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    """The ``bq load --schema`` JSON: every column NULLABLE (anonymization clears ids)."""
    return [{"name": name, "type": KINDS[kind].bigquery, "mode": "NULLABLE"}
            for name, kind in columns]


@dataclass
class ExportStats:
    """What one run wrote, for the summary line and the tests."""

    rows: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    deletions: int = 0


def export(conn: psycopg.Connection[Any], target: Path, *, fmt: str, now: datetime,
           settle: timedelta = timedelta(minutes=5)) -> ExportStats:
    """Export what is new for ``target`` (a directory) in ``fmt``; move its watermarks."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    target.mkdir(parents=True, exist_ok=True)
    key = str(target.resolve())
    before = now - settle
    stats = ExportStats()
    write_schemas(target)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")  # one snapshot
        marks = {table: _watermark(conn, key, table) for table in (*TABLES, DELETIONS)}
        for table, columns in TABLES.items():
            after = marks[table][0]
            rows = _rows(conn, table, columns, after, before)
            stats.rows[table], files = _write_days(target, table, columns, rows, after, fmt)
            stats.files += files
        deletions = list(_deletions(conn, marks[DELETIONS][1]))
    if deletions:
        stats.files.append(_write_deletions(target, deletions, fmt))
        stats.deletions = len(deletions)
    last_deletion = deletions[-1]["deletion_id"] if deletions else marks[DELETIONS][1]
    with conn.transaction():  # only after every file is in place
        for table in TABLES:
            _save(conn, key, table, before, 0, stats.rows[table])
        _save(conn, key, DELETIONS, before, last_deletion, stats.deletions)
    return stats


def write_schemas(target: Path) -> None:
    """``_schema/<table>.bigquery.json`` and ``.parquet.txt`` from the one column list."""
    folder = target / "_schema"
    folder.mkdir(exist_ok=True)
    for table, columns in {**TABLES, "deletions": DELETION_COLUMNS}.items():
        (folder / f"{table}.bigquery.json").write_text(
            json.dumps(bigquery_schema(columns), indent=2) + "\n")
        (folder / f"{table}.parquet.txt").write_text(str(arrow_schema(columns)) + "\n")


def _watermark(conn: psycopg.Connection[Any], target: str, table: str) -> tuple[datetime, int]:
    row = conn.execute(QUERIES["watermark"], {"target": target, "table": table}).fetchone()
    return (row[0], int(row[1])) if row else (BEGINNING, 0)


def _save(conn: psycopg.Connection[Any], target: str, table: str, before: datetime,
          last_deletion: int, rows: int) -> None:
    conn.execute(QUERIES["save_watermark"], {
        "target": target, "table": table, "received_before": before,
        "last_deletion": last_deletion, "rows": rows})


def _rows(conn: psycopg.Connection[Any], table: str, columns: tuple[tuple[str, str], ...],
          after: datetime, before: datetime) -> Iterator[tuple[Any, ...]]:
    select = sql.SQL(", ").join(
        sql.SQL(KINDS[kind].select.format(c="{}")).format(sql.Identifier(name))
        for name, kind in columns)
    query = sql.SQL(QUERIES["new_rows"]).format(columns=select, table=sql.Identifier(table))
    with conn.cursor(name=f"wm_export_{table}") as cur:  # server-side: memory stays flat
        cur.itersize = FETCH_ROWS
        cur.execute(query, {"after": after, "before": before})
        yield from cur


def _deletions(conn: psycopg.Connection[Any], after: int) -> Iterator[dict[str, Any]]:
    cur = conn.execute(QUERIES["new_deletions"], {"after": after})
    names = [d.name for d in cur.description or ()]
    for row in cur:
        yield dict(zip(names, row, strict=True))


def _write_days(target: Path, table: str, columns: tuple[tuple[str, str], ...],
                rows: Iterator[tuple[Any, ...]], after: datetime, fmt: str
                ) -> tuple[int, list[Path]]:
    """Rows (in day order) into ``<table>/day=YYYY-MM-DD/part-<window start>.<fmt>``."""
    day_of = [name for name, _ in columns].index("occurred_at")
    part = f"part-{after.strftime('%Y%m%dT%H%M%S%fZ')}.{fmt}"
    sink: _Sink | None = None
    files: list[Path] = []
    count = 0
    for row in rows:
        day = row[day_of].astimezone(UTC).date()
        if sink is None or sink.day != day:
            if sink is not None:
                files.append(sink.close())
            sink = _Sink(target / table / f"day={day.isoformat()}" / part, day, columns, fmt)
        sink.add(row)
        count += 1
    if sink is not None:
        files.append(sink.close())
    return count, files


def _write_deletions(target: Path, deletions: list[dict[str, Any]], fmt: str) -> Path:
    first, last = deletions[0]["deletion_id"], deletions[-1]["deletion_id"]
    path = target / "_deletions" / f"deletions-{first:012d}-{last:012d}.{fmt}"
    sink = _Sink(path, None, DELETION_COLUMNS, fmt)
    for entry in deletions:
        sink.add(tuple(entry[name] for name, _ in DELETION_COLUMNS))
    return sink.close()


class _Sink:
    """One output file, written under a temporary name and renamed when complete."""

    def __init__(self, path: Path, day: date | None, columns: tuple[tuple[str, str], ...],
                 fmt: str) -> None:
        self.path, self.day, self.columns, self.fmt = path, day, columns, fmt
        self.schema = arrow_schema(columns)
        self.pending: list[tuple[Any, ...]] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = path.with_name(path.name + ".partial")
        self.parquet = pq.ParquetWriter(self.partial, self.schema, compression="zstd") \
            if fmt == "parquet" else None
        self.lines = self.partial.open("w", encoding="utf-8") if fmt == "ndjson" else None

    def add(self, row: tuple[Any, ...]) -> None:
        self.pending.append(row)
        if len(self.pending) >= FETCH_ROWS:
            self._flush()

    def close(self) -> Path:
        self._flush()
        if self.parquet is not None:
            self.parquet.close()
        if self.lines is not None:
            self.lines.close()
        os.replace(self.partial, self.path)
        return self.path

    def _flush(self) -> None:
        if not self.pending:
            return
        if self.parquet is not None:
            arrays = [pa.array([r[i] for r in self.pending], type=self.schema.field(i).type)
                      for i in range(len(self.columns))]
            self.parquet.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        if self.lines is not None:
            names = [name for name, _ in self.columns]
            for row in self.pending:
                self.lines.write(json.dumps(
                    {n: _json_value(v) for n, v in zip(names, row, strict=True)},
                    ensure_ascii=False) + "\n")
        self.pending.clear()


def _json_value(value: Any) -> Any:
    """NDJSON as BigQuery loads it: timestamps in ISO 8601, bytes in base64."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value

