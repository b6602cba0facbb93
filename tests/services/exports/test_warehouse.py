"""Warehouse exports read back by DuckDB: counts and columns match the tables, a second run
adds only what is new, and the deletion manifest applied in DuckDB leaves no forgotten row."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from analytics_support import add_event

from backend.db import Database
from backend.services.exports import warehouse
from backend.services.privacy import retention
from backend.services.privacy.forget import forget_user
from bench.stand_ins import StandInUnavailable, running_s3

ANN, BOB = uuid.UUID(int=0xA11), uuid.UUID(int=0xB0B)
DAY1, DAY2 = datetime(2026, 11, 20, 10, tzinfo=UTC), datetime(2026, 11, 21, 23, 59, tzinfo=UTC)


def run(conn: psycopg.Connection[Any], target: Path | str, fmt: str = "parquet"
        ) -> warehouse.ExportStats:
    """An export now, with no settle margin: every committed row is due."""
    return warehouse.export(conn, target, fmt=fmt, now=datetime.now(UTC), settle=timedelta(0))


def seed(conn: psycopg.Connection[Any]) -> None:
    for user, at in ((ANN, DAY1), (BOB, DAY1), (ANN, DAY2)):
        add_event(conn, "quest_started", at, user_id=user, visitor_hash=b"\x01\x02",
                  data={"quest_id": "q1"})
    conn.execute("INSERT INTO error_events (error_id, occurred_at, user_id, error_type, "
                 "message, fingerprint) VALUES (gen_random_uuid(), %s, %s, 'javascript_error', "
                 "'boom', 'f1')", (DAY2, BOB))


def events_in(target: Path, fmt: str = "parquet") -> duckdb.DuckDBPyRelation:
    files = f"{target}/user_activity_events/*/*.{fmt}"
    if fmt == "parquet":
        return duckdb.sql("SELECT * FROM read_parquet(?, hive_partitioning = true)",
                          params=[files])
    return duckdb.sql("SELECT * FROM read_json_auto(?, hive_partitioning = true)",
                      params=[files])


def test_parquet_holds_the_tables_rows_and_columns_by_day(
        conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    seed(conn)
    stats = run(conn, tmp_path, "parquet")
    assert stats.rows == {"user_activity_events": 3, "error_events": 1}
    days = sorted(p.parent.name for p in (tmp_path / "user_activity_events").glob("*/*.parquet"))
    assert days == ["day=2026-11-20", "day=2026-11-21"]
    exported = events_in(tmp_path)
    names = [n for n, _ in warehouse.TABLES["user_activity_events"]]
    assert exported.columns == [*names, "day"]  # + the partition column
    got = sorted(exported.select("event_id, user_id, visitor_hash, event_data").fetchall())
    want = sorted(conn.execute(
        "SELECT event_id::text, user_id::text, encode(visitor_hash, 'hex'), event_data::text "
        "FROM user_activity_events").fetchall())
    assert got == want
    errors = duckdb.sql("SELECT count(*) FROM read_parquet(?)",
                        params=[f"{tmp_path}/error_events/*/*"])
    assert errors.fetchall() == [(1,)]


def test_text_survives_the_csv_stream_exactly(conn: psycopg.Connection[Any],
                                               tmp_path: Path) -> None:
    """Empty is not NULL, and commas, quotes, newlines and non-ASCII come out as they went in."""
    tricky = 'a,"b"\nc — ü \\ end'
    conn.execute("INSERT INTO user_activity_events (event_type, occurred_at, page_title, "
                 "referrer, page_path, event_data) VALUES ('page_view', %s, '', NULL, %s, "
                 "jsonb_build_object('k', %s::text))", (DAY1, tricky, tricky))
    run(conn, tmp_path)
    rows = events_in(tmp_path).select("page_title, referrer, page_path, event_data").fetchall()
    assert len(rows) == 1 and rows[0][:3] == ("", None, tricky)
    assert json.loads(rows[0][3]) == {"k": tricky}


def test_the_column_list_is_every_column_of_the_tables(conn: psycopg.Connection[Any]) -> None:
    """A column added to a table must be added to the export (or this fails and says which).
    The export keeps its own column order (stable for the warehouse's readers), whatever
    order the table has (the events' changed when they were partitioned)."""
    for table, columns in warehouse.TABLES.items():
        in_db = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = %s ORDER BY ordinal_position", (table,))]
        assert sorted(name for name, _ in columns) == sorted(in_db), table


def test_a_second_run_adds_only_new_rows_and_a_repeat_replaces_its_files(
        conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    seed(conn)
    run(conn, tmp_path, "parquet")
    assert run(conn, tmp_path, "parquet").rows == {
        "user_activity_events": 0, "error_events": 0}
    add_event(conn, "quest_completed", DAY2, user_id=BOB)
    second = run(conn, tmp_path, "parquet")
    assert second.rows["user_activity_events"] == 1
    all_ids = events_in(tmp_path).select("event_id").fetchall()
    assert len(all_ids) == len(set(all_ids)) == 4
    # A run that dies after writing its files but before saving its watermark: the next
    # run covers the same window again (and more), over the same files, never beside them.
    saved = conn.execute("SELECT table_name, received_before FROM waymark.export_watermarks "
                         "WHERE table_name = 'user_activity_events'").fetchall()
    add_event(conn, "quest_abandoned", DAY1, user_id=BOB)
    run(conn, tmp_path)
    conn.execute("UPDATE waymark.export_watermarks SET received_before = %s "
                 "WHERE table_name = %s", (saved[0][1], saved[0][0]))  # as if never saved
    add_event(conn, "logout", DAY2, user_id=BOB)
    assert run(conn, tmp_path).rows["user_activity_events"] == 2
    ids = events_in(tmp_path).select("event_id").fetchall()
    assert len(ids) == len(set(ids)) == 6


def test_rows_still_settling_wait_for_the_next_run(conn: psycopg.Connection[Any],
                                                   tmp_path: Path) -> None:
    seed(conn)
    now = datetime.now(UTC)
    assert warehouse.export(conn, tmp_path, fmt="parquet", now=now).rows[
        "user_activity_events"] == 0  # received within the 5-minute margin
    assert run(conn, tmp_path).rows["user_activity_events"] == 3


def test_ndjson_and_the_schema_files(conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    seed(conn)
    run(conn, tmp_path, "ndjson")
    assert events_in(tmp_path, "ndjson").count("*").fetchall() == [(3,)]
    line = json.loads(next((tmp_path / "user_activity_events").glob("*/*.ndjson"))
                      .read_text().splitlines()[0])
    assert line["visitor_hash"] == "0102"  # keyed hashes as hex text
    bq = json.loads((tmp_path / "_schema/user_activity_events.bigquery.json").read_text())
    assert [c["name"] for c in bq] == [n for n, _ in warehouse.TABLES["user_activity_events"]]
    assert {c["type"] for c in bq} <= {"STRING", "TIMESTAMP", "INT64"}


APPLY_MANIFEST = (Path(__file__).resolve().parents[3] / "docs" / "exports.md")


def manifest_sql() -> list[str]:
    """The statements docs/exports.md gives a warehouse, as written there (DuckDB dialect)."""
    text = APPLY_MANIFEST.read_text()
    block = text.split("```sql\n-- apply the deletion manifest (DuckDB)\n", 1)[1].split("```")[0]
    return [s.strip() for s in block.split(";") if s.strip()]


def test_the_deletion_manifest_applied_in_duckdb_leaves_no_forgotten_row(
        db: Database, conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    seed(conn)
    old = add_event(conn, "page_view", datetime.now(UTC) - timedelta(days=800), user_id=BOB)
    run(conn, tmp_path, "parquet")
    forget_user(db, ANN, now=datetime.now(UTC))
    retention.purge(db, now=datetime.now(UTC), older_than_days=730, collect_retention_days=30)
    second = run(conn, tmp_path, "parquet")
    assert second.deletions == 2
    manifest = next((tmp_path / "_deletions").glob("*.parquet"))
    assert str(ANN) not in manifest.read_bytes().decode("latin-1")  # only its hash left
    warehouse_db = duckdb.connect()
    warehouse_db.execute("CREATE TABLE events AS SELECT * FROM read_parquet(?)",
                         [f"{tmp_path}/user_activity_events/*/*.parquet"])
    warehouse_db.execute("CREATE TABLE deletions AS SELECT * FROM read_parquet(?)",
                         [f"{tmp_path}/_deletions/*.parquet"])
    assert warehouse_db.sql("SELECT count(*) FROM events WHERE user_id = ?",
                            params=[str(ANN)]).fetchall() == [(2,)]
    for statement in manifest_sql():
        warehouse_db.execute(statement)
    left = warehouse_db.sql("SELECT user_id, event_id FROM events").fetchall()
    assert str(ANN) not in {user for user, _ in left}
    assert str(old) not in {event for _, event in left}  # purged at 730 days
    assert {user for user, _ in left} == {str(BOB)}


@pytest.mark.parametrize("fmt", ["csv"])
def test_an_unknown_format_is_refused(conn: psycopg.Connection[Any], tmp_path: Path,
                                      fmt: str) -> None:
    with pytest.raises(ValueError, match="format"):
        run(conn, tmp_path, fmt)


# ---- to S3 (moto's S3 server on loopback) ------------------------------------------------


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pafs.S3FileSystem]:
    """A bucket on a real S3 API; the export finds it through the standard AWS_* variables."""
    with ExitStack() as stack:
        try:
            endpoint = stack.enter_context(running_s3(tmp_path))
        except StandInUnavailable as exc:
            pytest.skip(str(exc))
        for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test",
                            "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
                            "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        fs = pafs.S3FileSystem(access_key="test", secret_key="test", region="us-east-1",
                               endpoint_override=endpoint, allow_bucket_creation=True)
        fs.create_dir("exports-bucket")
        yield fs


def test_an_s3_target_holds_the_same_files_and_moves_on_like_a_directory(
        conn: psycopg.Connection[Any], db: Database, s3: pafs.S3FileSystem) -> None:
    seed(conn)
    to = "s3://exports-bucket/waymark"
    assert run(conn, to).rows == {"user_activity_events": 3, "error_events": 1}
    forget_user(db, ANN, now=datetime.now(UTC))
    add_event(conn, "quest_completed", DAY2, user_id=BOB)
    second = run(conn, to)
    assert (second.rows["user_activity_events"], second.deletions) == (1, 1)
    keys = sorted(info.path for info in s3.get_file_info(
        pafs.FileSelector("exports-bucket/waymark", recursive=True)) if info.is_file)
    assert not [k for k in keys if k.endswith(".partial")]
    assert "exports-bucket/waymark/_schema/user_activity_events.bigquery.json" in keys
    events = pq.read_table("exports-bucket/waymark/user_activity_events", filesystem=s3,
                           partitioning="hive")
    assert events.num_rows == 4 and len(set(events.column("event_id").to_pylist())) == 4
    assert [k for k in keys if "/_deletions/" in k]
    marks = conn.execute("SELECT DISTINCT target FROM waymark.export_watermarks").fetchall()
    assert marks == [(to,)]
