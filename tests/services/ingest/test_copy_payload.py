"""The writer's finished binary COPY: the bytes psycopg would send, stored as written."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import pq, sql
from psycopg.adapt import Transformer

from backend.services.ingest import copy_payload, items

T0 = datetime(2026, 11, 22, 8, 0, 0, 123456, tzinfo=UTC)


def rows() -> list[dict[str, Any]]:
    full = items.event_row(
        "quest_started", T0, occurred_at=T0 - timedelta(seconds=3), page_path="/q/é",
        page_title='Bridges "over" water', referrer="https://r.example/?a=1", utm_source="news",
        utm_medium="mail", utm_campaign="fall", duration_ms=1200, load_time_ms=80,
        status_code=201, event_data={"quest_id": "q9", "n": [1, 2.5, None], "ok": True,
                                     "nested": {"emoji": "🌉", "quote": "'\\\""}})
    full.update(user_id=uuid.uuid4(), visitor_hash=bytes(range(16)), network_hash=b"\x00" * 16,
                session_id=uuid.uuid4(), browser="Chrome", os="Windows", device_type="desktop")
    sparse = items.event_row("api_request", T0, source="server")  # mostly NULLs, empty data
    return [full, sparse, items.event_row("page_view", T0, event_data={"k": "v" * 5000})]


def test_the_c_formatter_is_in_use() -> None:
    # psycopg's private formatter moved: the writer still works (public path), but slower
    assert copy_payload.FAST_FORMATTER


def test_the_public_path_with_the_global_adapters_makes_the_same_bytes() -> None:
    # what write_row sends on one of the writer's connections (psycopg's global adapters)
    tx = Transformer()
    tx.set_dumper_types([psycopg.adapters.types.get_oid(name)
                         for name in copy_payload.COPY_TYPES_SQL], pq.Format.BINARY)
    batch = rows() * 200  # several of psycopg's 32 kB chunks
    assert copy_payload.encode(batch) == copy_payload.encode_public(batch, tx)
    assert copy_payload.encode([]) == copy_payload.encode_public([], tx)


def test_a_payload_is_stored_as_its_rows_say(conn: psycopg.Connection[Any]) -> None:
    batch = rows()
    columns = sql.SQL(", ").join(map(sql.Identifier, copy_payload.EVENT_COLUMNS))
    with conn.cursor() as cur, cur.copy(sql.SQL(
            "COPY public.user_activity_events ({}) FROM STDIN (FORMAT BINARY)").format(
                columns)) as copy:
        copy.write(copy_payload.encode(batch, pause=lambda: None, every=1))
    stored = {r[0]: r[1:] for r in conn.execute(
        sql.SQL("SELECT {} FROM public.user_activity_events").format(columns))}
    assert len(stored) == 3
    for row in batch:
        values = dict(zip(copy_payload.EVENT_COLUMNS[1:], stored[row["event_id"]], strict=True))
        assert values == {k: v for k, v in row.items() if k != "event_id"}


def test_a_row_psycopg_cannot_dump_names_its_column_on_both_paths() -> None:
    bad = items.event_row("page_view", T0)
    bad["user_id"] = "not a uuid"
    with pytest.raises(copy_payload.UnencodableRow) as by_c:
        copy_payload.encode([*rows(), bad])
    with pytest.raises(copy_payload.UnencodableRow) as by_public:
        copy_payload.encode_public([*rows(), bad])
    assert by_c.value.column == by_public.value.column == "user_id"
    assert isinstance(by_c.value.__cause__, copy_payload.ENCODING_ERRORS)


def test_a_failure_no_single_value_explains_is_not_blamed_on_the_row() -> None:
    """Only a value that alone cannot be dumped as its column's type makes a row bad data."""
    values = [rows()[0][name] for name in copy_payload.EVENT_COLUMNS]
    failure = TypeError("a bug of ours")
    at = copy_payload.EVENT_COLUMNS.index("event_data")
    blamed = copy_payload.unencodable(values, copy_payload.COPY_TYPES_SQL,
                                      copy_payload.EVENT_COLUMNS, failure)
    assert blamed is not None and blamed.column == "event_data"  # a dict where bytes go
    values[at] = b"\x01{}"  # jsonb's binary form, as encode() makes it
    assert copy_payload.unencodable(values, copy_payload.COPY_TYPES_SQL,
                                    copy_payload.EVENT_COLUMNS, failure) is None
