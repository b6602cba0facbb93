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

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from psycopg import sql

from backend.services.exports import QUERIES

FORMATS = ("parquet", "ndjson")
DELETIONS = "_deletions"  # the watermark row of a target's deletion manifests
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
ROW_GROUP_ROWS = 128_000  # rows per Parquet row group (and per NDJSON write)
MAX_BUFFERED_ROWS = 400_000  # across a run's open day files: memory stays ~100 MB


@dataclass(frozen=True)
class Kind:
    """How one PostgreSQL type leaves: the expression COPY writes as CSV, the type Arrow reads
    that CSV as, the type it is stored as, and the BigQuery type."""

    select: str  # with {c} for the column
    read: pa.DataType
    arrow: pa.DataType
    bigquery: str


EPOCH_US = "(extract(epoch FROM {c}) * 1000000)::int8"  # exact, and cheap for Arrow to parse
KINDS = {
    "uuid": Kind("{c}::text", pa.string(), pa.string(), "STRING"),
    "text": Kind("{c}::text", pa.string(), pa.string(), "STRING"),  # enums as their labels
    "json": Kind("{c}::text", pa.string(), pa.string(), "STRING"),  # PARSE_JSON in BigQuery
    "timestamp": Kind(EPOCH_US, pa.int64(), pa.timestamp("us", tz="UTC"), "TIMESTAMP"),
    "hex": Kind("encode({c}, 'hex')", pa.string(), pa.string(), "STRING"),  # keyed hashes
    "int16": Kind("{c}", pa.int16(), pa.int16(), "INT64"),
    "int32": Kind("{c}", pa.int32(), pa.int32(), "INT64"),
    "int64": Kind("{c}", pa.int64(), pa.int64(), "INT64"),
}

#: The one column list: every exported table and its columns, in table order.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "user_activity_events": (
        ("event_id", "uuid"), ("occurred_at", "timestamp"), ("received_at", "timestamp"),
        ("user_id", "uuid"), ("visitor_hash", "hex"), ("network_hash", "hex"),
        ("session_id", "uuid"), ("event_type", "text"), ("event_category", "text"),
        ("page_path", "text"), ("page_title", "text"), ("referrer", "text"),
        ("utm_source", "text"), ("utm_medium", "text"), ("utm_campaign", "text"),
        ("duration_ms", "int32"), ("load_time_ms", "int32"), ("status_code", "int16"),
        ("source", "text"), ("event_data", "json"), ("browser", "text"), ("os", "text"),
        ("device_type", "text"), ("anonymized_at", "timestamp"),
    ),
    "error_events": (
        ("error_id", "uuid"), ("occurred_at", "timestamp"), ("received_at", "timestamp"),
        ("user_id", "uuid"), ("visitor_hash", "hex"), ("session_id", "uuid"),
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
    files: list[str] = field(default_factory=list)  # paths in the target's file system
    deletions: int = 0


@dataclass(frozen=True)
class Target:
    """Where an export lands: a local directory, or a prefix in an S3 bucket (``s3://…``).

    ``key`` names the target's watermarks: the resolved directory, or the URL itself.
    Files on a local disk are written under a temporary name and renamed when complete; an
    S3 object appears only once its upload completes, so it is written in place.
    """

    fs: pafs.FileSystem
    root: str
    key: str

    @classmethod
    def parse(cls, to: str | Path) -> Target:
        """``s3://bucket/prefix`` (credentials, region and endpoint from the standard AWS_*
        variables, e.g. ``AWS_ENDPOINT_URL`` for MinIO or R2) or a directory."""
        text = str(to)
        if "://" in text:
            if not text.startswith("s3://"):
                raise ValueError(f"--to must be a directory or an s3:// URL, not {text!r}")
            fs, root = pafs.FileSystem.from_uri(text)
            return cls(fs, root.rstrip("/"), text.rstrip("/"))
        path = Path(text).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return cls(pafs.LocalFileSystem(), str(path), str(path))

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    def write_text(self, path: str, text: str) -> None:
        self.make_parent(path)
        with self.fs.open_output_stream(path) as out:
            out.write(text.encode())

    def make_parent(self, path: str) -> None:
        if self.local:  # object stores have no directories to make
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)


def export(conn: psycopg.Connection[Any], to: str | Path | Target, *, fmt: str,
           now: datetime, settle: timedelta = timedelta(minutes=5)) -> ExportStats:
    """Export what is new for ``to`` (a directory or ``s3://`` URL) in ``fmt``; move its
    watermarks."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    target = to if isinstance(to, Target) else Target.parse(to)
    key = target.key
    before = now - settle
    stats = ExportStats()
    write_schemas(target)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")  # one snapshot
        marks = {table: _watermark(conn, key, table) for table in (*TABLES, DELETIONS)}
        for table, columns in TABLES.items():
            after = marks[table][0]
            batches = _batches(conn, table, columns, after, before)
            stats.rows[table], files = _write_days(target, table, columns, batches, after, fmt)
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


def write_schemas(target: Target) -> None:
    """``_schema/<table>.bigquery.json`` and ``.parquet.txt`` from the one column list."""
    for table, columns in {**TABLES, "deletions": DELETION_COLUMNS}.items():
        target.write_text(target.path("_schema", f"{table}.bigquery.json"),
                          json.dumps(bigquery_schema(columns), indent=2) + "\n")
        target.write_text(target.path("_schema", f"{table}.parquet.txt"),
                          str(arrow_schema(columns)) + "\n")


def _watermark(conn: psycopg.Connection[Any], target: str, table: str) -> tuple[datetime, int]:
    row = conn.execute(QUERIES["watermark"], {"target": target, "table": table}).fetchone()
    return (row[0], int(row[1])) if row else (BEGINNING, 0)


def _save(conn: psycopg.Connection[Any], target: str, table: str, before: datetime,
          last_deletion: int, rows: int) -> None:
    conn.execute(QUERIES["save_watermark"], {
        "target": target, "table": table, "received_before": before,
        "last_deletion": last_deletion, "rows": rows})


def _batches(conn: psycopg.Connection[Any], table: str, columns: tuple[tuple[str, str], ...],
             after: datetime, before: datetime) -> Iterator[pa.RecordBatch]:
    """The new rows as Arrow batches: COPY … TO STDOUT (CSV) parsed by Arrow's C++ reader.

    Python never touches a row: the database writes CSV, Arrow parses it in blocks and
    the Parquet writer encodes them, which is what keeps the export near raw COPY speed.
    """
    select = sql.SQL(", ").join(
        sql.SQL(KINDS[kind].select.format(c="{}")).format(sql.Identifier(name))
        for name, kind in columns)
    query = sql.SQL(QUERIES["new_rows"]).format(columns=select, table=sql.Identifier(table))
    # COPY takes no parameters: the two bounds are bound client-side (both are datetimes)
    bound = psycopg.ClientCursor(conn).mogrify(query, {"after": after, "before": before})
    copy_sql = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(sql.SQL(bound))
    read = pacsv.ReadOptions(column_names=[name for name, _ in columns], block_size=4 << 20)
    convert = pacsv.ConvertOptions(
        column_types={name: KINDS[kind].read for name, kind in columns},
        strings_can_be_null=True, quoted_strings_can_be_null=False)  # "" stays ""
    schema = arrow_schema(columns)
    with conn.cursor() as cur, cur.copy(copy_sql) as copy:
        stream = io.BufferedReader(_CopyStream(copy), buffer_size=1 << 20)
        if not stream.peek(1):
            return  # nothing new (Arrow refuses an empty CSV)
        for batch in pacsv.open_csv(stream, read_options=read, convert_options=convert):
            yield pa.RecordBatch.from_arrays(
                [column.cast(field.type) for column, field in zip(batch.columns, schema,
                                                                  strict=True)],
                schema=schema)


class _CopyStream(io.RawIOBase):
    """COPY's data blocks as a file Arrow can read."""

    def __init__(self, copy: Any) -> None:
        self.blocks = iter(copy)
        self.block = memoryview(b"")
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self.pos >= len(self.block):
            try:
                self.block, self.pos = memoryview(next(self.blocks)), 0
            except StopIteration:
                return 0
        n = min(len(buffer), len(self.block) - self.pos)
        buffer[:n] = self.block[self.pos:self.pos + n]
        self.pos += n
        return n


def _deletions(conn: psycopg.Connection[Any], after: int) -> Iterator[dict[str, Any]]:
    cur = conn.execute(QUERIES["new_deletions"], {"after": after})
    names = [d.name for d in cur.description or ()]
    for row in cur:
        yield dict(zip(names, row, strict=True))


def _write_days(target: Target, table: str, columns: tuple[tuple[str, str], ...],
                batches: Iterator[pa.RecordBatch], after: datetime, fmt: str
                ) -> tuple[int, list[str]]:
    """Batches into ``<table>/day=YYYY-MM-DD/part-<window start>.<fmt>``, one file a day."""
    part = f"part-{after.strftime('%Y%m%dT%H%M%S%fZ')}.{fmt}"
    sinks: dict[date, _Sink] = {}
    count = 0
    for batch in batches:
        count += batch.num_rows
        days = pc.cast(batch.column("occurred_at"), pa.date32())
        order = pc.sort_indices(days)  # one sort, then a slice per day (not a filter per day)
        batch, days = batch.take(order), days.take(order)
        offset = 0
        for run in pc.value_counts(days).to_pylist():  # days in sorted order
            day, n = run["values"], run["counts"]
            if day not in sinks:
                sinks[day] = _Sink(target, target.path(table, f"day={day.isoformat()}", part),
                                   columns, fmt)
            sinks[day].add(batch.slice(offset, n))
            offset += n
        if sum(sink.pending_rows for sink in sinks.values()) > MAX_BUFFERED_ROWS:
            for sink in sinks.values():  # many days at once: bound memory, not row groups
                sink.flush()
    return count, [sinks[day].close() for day in sorted(sinks)]


def _write_deletions(target: Target, deletions: list[dict[str, Any]], fmt: str) -> str:
    first, last = deletions[0]["deletion_id"], deletions[-1]["deletion_id"]
    path = target.path("_deletions", f"deletions-{first:012d}-{last:012d}.{fmt}")
    sink = _Sink(target, path, DELETION_COLUMNS, fmt)
    sink.add(pa.RecordBatch.from_pylist(deletions, schema=arrow_schema(DELETION_COLUMNS)))
    return sink.close()


class _Sink:
    """One output file; on a local disk written under a temporary name and renamed when
    complete (see :class:`Target`)."""

    def __init__(self, target: Target, path: str, columns: tuple[tuple[str, str], ...],
                 fmt: str) -> None:
        self.target, self.path = target, path
        self.schema = arrow_schema(columns)
        target.make_parent(path)
        self.partial = path + ".partial" if target.local else path
        self.stream = target.fs.open_output_stream(self.partial)
        self.parquet = pq.ParquetWriter(self.stream, self.schema, compression="zstd") \
            if fmt == "parquet" else None
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        """Buffer ``batch``; write once a row group's worth is there (slices of one day are
        small, and a Parquet row group per slice would make slow files)."""
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        table = pa.Table.from_batches(self.pending, schema=self.schema)
        self.pending, self.pending_rows = [], 0
        if self.parquet is not None:
            self.parquet.write_table(table, row_group_size=ROW_GROUP_ROWS)
        else:
            self.stream.write("".join(
                json.dumps({k: _json_value(v) for k, v in row.items()}, ensure_ascii=False)
                + "\n" for row in table.to_pylist()).encode())

    def close(self) -> str:
        self.flush()
        if self.parquet is not None:
            self.parquet.close()
        self.stream.close()
        if self.partial != self.path:
            self.target.fs.move(self.partial, self.path)
        return self.path


def _json_value(value: Any) -> Any:
    """NDJSON as BigQuery loads it: timestamps in ISO 8601."""
    return value.isoformat() if isinstance(value, datetime) else value

