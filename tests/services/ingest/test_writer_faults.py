"""A bug in our code fails loudly; only PostgreSQL's data errors dead-letter a row.

Against the real PostgreSQL, no mock of the database: a bug is injected by replacing one
of our functions for its first calls, then letting the real one run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from ingestion_support import count

from backend import db
from backend.config import Settings
from backend.services.ingest import copy_payload, error_groups, items, session_segments, store
from backend.services.ingest.privacy_step import PrivacyStep
from backend.services.ingest.writer import EventWriter


def _settings() -> Settings:
    return Settings(batch_size=500, flush_interval=0.2, queue_size=10_000)


def _no_tokens(token: str) -> tuple[uuid.UUID | None, float]:
    return None, time.time() + 60


def event(user_id: uuid.UUID | None = None, **columns: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    row = items.event_row("page_view", now, **columns)
    return {"kind": "event", "row": row, "received_at": now, "client": None, "user_id": user_id}


def error_report(message: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    row = {"error_id": items.new_id(), "occurred_at": now, "received_at": now,
           "error_type": "javascript_error", "message": message, "stack": None,
           "component_name": None, "page_path": "/e", "api_endpoint": None,
           "http_method": None, "status_code": None, "source": "client", "event_data": {}}
    return {"kind": "error", "row": row, "received_at": now, "client": None, "user_id": None}


@pytest.fixture
def paused_writer(db_url: str) -> Iterator[EventWriter]:
    """A writer whose thread starts only when the test says so: the items form one batch."""
    w = EventWriter(db_url, _settings(), privacy=PrivacyStep(_settings(), _no_tokens),
                    autostart=False)
    yield w
    w.close(5)


def broken_for(calls: int, real: Callable[..., Any],
               bug: Callable[[tuple[Any, ...]], Any]) -> tuple[Callable[..., Any], list[int]]:
    """``real``, except that its first ``calls`` calls run ``bug`` instead."""
    made = [0]

    def replacement(*args: Any, **kwargs: Any) -> Any:
        made[0] += 1
        if made[0] <= calls:
            return bug(args)
        return real(*args, **kwargs)

    return replacement, made


def _key_error(args: tuple[Any, ...]) -> Any:
    return {}["no_such_key"]


def _submit_64(writer: EventWriter) -> list[uuid.UUID]:
    user = uuid.uuid4()
    batch = [event(user, page_path=f"/b{i}") for i in range(64)]
    for item in batch:
        assert writer.submit(item)
    return [item["row"]["event_id"] for item in batch]


def _stored_once(conn: psycopg.Connection[Any], ids: list[uuid.UUID]) -> bool:
    row = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM user_activity_events "
                       "WHERE event_id = ANY(%s)", (ids,)).fetchone()
    return row == (len(ids), len(ids))


def test_a_key_error_in_assign_sessions_is_retried_never_dead_lettered(
        paused_writer: EventWriter, conn: psycopg.Connection[Any],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    buggy, made = broken_for(3, session_segments.assign_sessions, _key_error)
    monkeypatch.setattr(session_segments, "assign_sessions", buggy)
    ids = _submit_64(paused_writer)
    paused_writer.start()
    assert paused_writer.flush(30) == 0
    assert count(conn, "waymark.dead_letters") == 0
    assert _stored_once(conn, ids)
    stats = paused_writer.stats()
    assert stats["writer_errors"] == 3 and made[0] == 4  # three failed attempts, one good
    assert stats["dead_lettered"] == 0 and stats["written"] == 64
    assert conn.execute("SELECT sum(event_count) FROM user_sessions").fetchone() == (64,)
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is KeyError]
    assert logged, "the bug is logged with its traceback"


def test_a_bug_in_the_prepare_stage_keeps_the_batch_and_retries_it(
        paused_writer: EventWriter, conn: psycopg.Connection[Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    buggy, made = broken_for(2, session_segments.segments_of, _key_error)
    monkeypatch.setattr(session_segments, "segments_of", buggy)
    ids = _submit_64(paused_writer)
    paused_writer.start()
    assert paused_writer.flush(30) == 0
    assert _stored_once(conn, ids)
    stats = paused_writer.stats()
    assert stats["writer_errors"] == 2
    assert "internal_error" not in stats["dropped"]
    assert count(conn, "waymark.dead_letters") == 0


def test_an_undefined_column_is_a_bug_not_bad_data(
        paused_writer: EventWriter, conn: psycopg.Connection[Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A psycopg ProgrammingError (SQLSTATE 42703) from our own SQL: retried, not filed."""
    def undefined_column(args: tuple[Any, ...]) -> Any:
        return args[0].execute("SELECT no_such_column FROM public.error_events")

    buggy, _ = broken_for(2, error_groups.write_errors, undefined_column)
    monkeypatch.setattr(error_groups, "write_errors", buggy)
    paused_writer.submit(error_report("boom"))
    ids = _submit_64(paused_writer)
    paused_writer.start()
    assert paused_writer.flush(30) == 0
    assert count(conn, "waymark.dead_letters") == 0
    assert count(conn, "error_events") == 1
    assert _stored_once(conn, ids)
    assert paused_writer.stats()["writer_errors"] == 2


def test_a_bug_that_never_goes_away_is_unwritten_at_exit_not_dead_lettered(
        db_url: str, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    buggy, _ = broken_for(10**9, session_segments.assign_sessions, _key_error)
    monkeypatch.setattr(session_segments, "assign_sessions", buggy)
    w = EventWriter(db_url, _settings(), privacy=PrivacyStep(_settings(), _no_tokens))
    for i in range(5):
        w.submit(event(uuid.uuid4(), page_path=f"/never{i}"))
    w.close(1.0)
    assert count(conn, "waymark.dead_letters") == 0
    assert count(conn, "user_activity_events") == 0
    stats = w.stats()
    assert stats["dropped"]["unwritten_at_exit"] == 5 and stats["writer_errors"] >= 1


def test_a_data_error_dead_letters_exactly_the_bad_row(
        paused_writer: EventWriter, conn: psycopg.Connection[Any]) -> None:
    """SQLSTATE class 22 (a label the device_type enum lacks) among 64 rows: that row alone."""
    user = uuid.uuid4()
    batch = [event(user, page_path=f"/d{i}") for i in range(64)]
    batch[17]["row"]["device_type"] = "toaster"
    for item in batch:
        assert paused_writer.submit(item)
    paused_writer.start()
    assert paused_writer.flush(30) == 0
    dead = conn.execute("SELECT kind, sqlstate, payload->>'page_path' FROM waymark.dead_letters"
                        ).fetchall()
    assert dead == [("event", "22P02", "/d17")]
    assert count(conn, "user_activity_events") == 63
    assert count(conn, "user_activity_events", "page_path = '/d17'") == 0
    stats = paused_writer.stats()
    assert stats["dead_lettered"] == 1 and stats["writer_errors"] == 0
    assert conn.execute("SELECT sum(event_count) FROM user_sessions").fetchone() == (63,)


def test_an_error_report_psycopg_cannot_encode_is_dead_lettered_alone(
        paused_writer: EventWriter, conn: psycopg.Connection[Any]) -> None:
    """Encoded inside the transaction's COPY: still that row alone, with SQLSTATE NULL."""
    reports = [error_report(f"e{i}") for i in range(4)]
    reports[2]["row"]["event_data"] = {"tags": {"a", "b"}}  # a set: not JSON
    for item in reports:
        assert paused_writer.submit(item)
    paused_writer.start()
    assert paused_writer.flush(30) == 0
    dead = conn.execute("SELECT kind, sqlstate, payload->>'message' FROM waymark.dead_letters"
                        ).fetchall()
    assert dead == [("error", None, "e2")]
    assert count(conn, "error_events") == 3
    assert paused_writer.stats()["writer_errors"] == 0


@pytest.mark.parametrize(("exc", "is_data"), [
    (psycopg.errors.NotNullViolation("not null"), True),  # 23502 (23514: below)
    (psycopg.errors.UniqueViolation("unique"), True),  # 23505
    (psycopg.errors.InvalidTextRepresentation("enum"), True),  # 22P02
    (psycopg.errors.NumericValueOutOfRange("range"), True),  # 22003
    (psycopg.errors.UndefinedColumn("bug"), False),  # 42703: ProgrammingError
    (psycopg.errors.InFailedSqlTransaction("bug"), False),  # 25P02
    (psycopg.errors.InternalError_("server"), False),  # XX000
    (psycopg.errors.SerializationFailure("retry"), False),  # 40001: transient
    (psycopg.DataError("no sqlstate: not from the server"), False),
    (KeyError("bug"), False),
    (TypeError("bug"), False),
])
def test_which_errors_are_the_datas_fault(exc: BaseException, is_data: bool) -> None:
    assert store.is_data_error(exc) is is_data


def test_a_row_refused_by_a_partition_constraint_is_routed_again_not_dead_lettered(
        conn: psycopg.Connection[Any]) -> None:
    """Both are SQLSTATE 23514 as PostgreSQL raises them: a CHECK the row breaks is the
    data's fault; a partition's constraint (a row copied into the default partition as a
    week partition covering it was attached, as during `waymark migrate`) is not — seen
    in CI, where such an event was dead-lettered instead of stored."""
    conn.execute("CREATE TABLE routed (at int CHECK (at < 100)) PARTITION BY RANGE (at)")
    conn.execute("CREATE TABLE routed_week PARTITION OF routed FOR VALUES FROM (0) TO (10)")
    conn.execute("CREATE TABLE routed_default PARTITION OF routed DEFAULT")
    with pytest.raises(psycopg.errors.CheckViolation) as partition:
        conn.execute("INSERT INTO routed_default VALUES (5)")  # belongs to routed_week
    with pytest.raises(psycopg.errors.CheckViolation) as check:
        conn.execute("INSERT INTO routed VALUES (500)")
    assert db.rerouted(partition.value) and db.is_transient(partition.value)
    assert not store.is_data_error(partition.value)
    assert not db.rerouted(check.value) and store.is_data_error(check.value)


def test_a_value_that_cannot_be_encoded_is_the_datas_fault() -> None:
    assert store.is_data_error(copy_payload.UnencodableRow("user_id", TypeError("str")))
