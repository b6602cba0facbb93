"""The background writer against real PostgreSQL: batching, faults, poison rows, exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pgserver
import psycopg
import pytest
from ingestion_support import CHROME_UA, count
from pgserver._commands import pg_ctl

from backend import migrations
from backend.config import Settings
from backend.services.ingest import items
from backend.services.ingest.pacing import Contention
from backend.services.ingest.prepare import BatchPreparer
from backend.services.ingest.privacy_step import PrivacyStep
from backend.services.ingest.receipts import Receipt
from backend.services.ingest.store import Store
from backend.services.ingest.writer import EventWriter
from backend.services.privacy.tombstones import ADD_TOMBSTONE, TOMBSTONE_TTL


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"batch_size": 500, "flush_interval": 0.2, "queue_size": 10_000}
    values.update(overrides)
    return Settings(**values)


def _no_tokens(token: str) -> tuple[uuid.UUID | None, float]:
    return None, time.time() + 60


@pytest.fixture
def writer(db_url: str) -> Iterator[EventWriter]:
    w = EventWriter(db_url, _settings(), privacy=PrivacyStep(_settings(), _no_tokens))
    yield w
    w.close(5)


def event(user_id: uuid.UUID | None = None, client: bool = False, **columns: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    row = items.event_row(columns.pop("event_type", "page_view"), now, **columns)
    info = items.client("192.0.2.1", CHROME_UA, "https://a.example", None) if client else None
    return {"kind": "event", "row": row, "received_at": now, "client": info, "user_id": user_id}


def test_a_poison_row_leaves_the_other_499_stored(writer: EventWriter,
                                                  conn: psycopg.Connection[Any]) -> None:
    batch = [event(page_path=f"/p{i}") for i in range(500)]
    batch[250]["row"]["status_code"] = 999  # violates the table's CHECK
    for item in batch:
        assert writer.submit(item)
    assert writer.flush(30) == 0
    assert count(conn, "user_activity_events") == 499
    assert count(conn, "user_activity_events", "page_path = '/p250'") == 0
    dead = conn.execute("SELECT kind, sqlstate, payload->>'page_path' FROM waymark.dead_letters"
                        ).fetchall()
    assert dead == [("event", "23514", "/p250")]
    assert writer.stats()["dead_lettered"] == 1 and writer.stats()["written"] == 499


def test_dead_letters_stop_at_their_cap_and_are_counted(db_url: str,
                                                        conn: psycopg.Connection[Any]) -> None:
    """A flood of bad rows must not fill the disk: past WAYMARK_DEAD_LETTER_CAP they are
    counted (dead_letters_over_cap), not stored; the good rows are stored as ever."""
    w = EventWriter(db_url, _settings(dead_letter_cap=2),
                    privacy=PrivacyStep(_settings(), _no_tokens))
    try:
        batch = [event(page_path=f"/p{i}") for i in range(20)]
        for i in (3, 7, 11, 15):
            batch[i]["row"]["status_code"] = 999  # violates the table's CHECK
        for item in batch:
            assert w.submit(item)
        assert w.flush(30) == 0
        assert count(conn, "user_activity_events") == 16
        assert count(conn, "waymark.dead_letters") == 2
        stats = w.stats()
        assert (stats["dead_lettered"], stats["dead_letters_over_cap"]) == (2, 2)
    finally:
        w.close(5)


def test_the_queue_refuses_by_bytes_before_memory_runs_out(db_url: str) -> None:
    """WAYMARK_QUEUE_BYTES: an item of many tiny JSON objects counts for what it holds; the
    batch that would pass the bound is refused whole (503 at the endpoint), and counted."""
    w = EventWriter(db_url, _settings(queue_bytes=300_000),
                    privacy=PrivacyStep(_settings(), _no_tokens), autostart=False)
    try:
        heavy = {"l": [{"a": 1} for _ in range(1000)]}
        assert w.submit(event(page_path="/one", event_data=heavy))
        assert not w.submit(event(page_path="/two", event_data=heavy))
        assert w.submit(event(page_path="/small"))
        stats = w.stats()
        assert stats["dropped"]["queue_full"] == 1 and stats["queue_depth"] == 2
        assert 200_000 < stats["queue_bytes"] <= stats["queue_bytes_max"] == 300_000
    finally:
        w.close(5)


def test_connections_killed_mid_stream_lose_and_duplicate_nothing(
        writer: EventWriter, conn: psycopg.Connection[Any]) -> None:
    user = uuid.uuid4()
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set():
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name = 'waymark-writer' AND datname = current_database()")
            time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    accepted = 0
    try:
        for i in range(3000):
            accepted += writer.submit(event(user_id=user, page_path=f"/k{i}"))
            if i % 300 == 0:
                time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    assert writer.flush(60) == 0
    assert accepted == 3000
    assert count(conn, "user_activity_events") == 3000
    assert count(conn, "(SELECT DISTINCT page_path FROM user_activity_events) d") == 3000
    assert writer.stats()["retried"] > 0
    sessions = conn.execute("SELECT count(*), sum(event_count) FROM user_sessions").fetchone()
    assert sessions == (1, 3000)


def test_forgotten_users_are_not_written(writer: EventWriter,
                                         conn: psycopg.Connection[Any]) -> None:
    gone, kept = uuid.uuid4(), uuid.uuid4()
    conn.execute(ADD_TOMBSTONE, {"user_id": str(gone), "ttl": TOMBSTONE_TTL})
    writer.submit(event(user_id=gone))
    writer.submit(event(user_id=kept))
    assert writer.flush(10) == 0
    assert [r[0] for r in conn.execute("SELECT user_id FROM user_activity_events")] == [kept]
    assert count(conn, "user_sessions", "user_id = %s", (gone,)) == 0


def test_drop_user_removes_queued_items(db_url: str, conn: psycopg.Connection[Any]) -> None:
    w = EventWriter(db_url, _settings(), privacy=PrivacyStep(_settings(), _no_tokens),
                    autostart=False)  # items stay in the queue until start()
    try:
        gone = uuid.uuid4()
        for item in (event(user_id=gone), event(), event(user_id=gone)):
            w.submit(item)
        assert w.drop_user(gone) == 2
        assert w.stats()["queue_depth"] == 1
        w.start()
        assert w.flush(10) == 0
        assert count(conn, "user_activity_events") == 1
    finally:
        w.close(5)


def test_drop_user_finds_queued_http_items_by_their_token(
        db_url: str, conn: psycopg.Connection[Any]) -> None:
    """An HTTP item's user is only in its bearer token (checked later by the privacy step);
    forget must still find it in the queue, and leave a stranger's forged token alone."""
    gone, other = uuid.uuid4(), uuid.uuid4()
    tokens = {"token-of-gone": gone, "token-of-other": other}

    def verify(token: str) -> tuple[uuid.UUID | None, float]:
        return tokens.get(token), time.time() + 60

    def http_event(token: str) -> dict[str, Any]:
        item = event(client=True)
        item["client"]["token"] = token
        return item

    w = EventWriter(db_url, _settings(), privacy=PrivacyStep(_settings(), verify),
                    autostart=False)
    try:
        for token in ("token-of-gone", "token-of-other", "token-of-gone", "forged"):
            w.submit(http_event(token))
        assert w.drop_user(gone) == 2
        w.start()
        assert w.flush(10) == 0
        assert count(conn, "user_activity_events", "user_id = %s", (gone,)) == 0
        assert count(conn, "user_activity_events", "user_id = %s", (other,)) == 1
        assert count(conn, "user_activity_events") == 2  # the forged token's event: anonymous
    finally:
        w.close(5)


def test_before_store_can_change_or_drop_rows_and_its_errors_drop_one_event(
        db_url: str, conn: psycopg.Connection[Any]) -> None:
    def hook(row: dict[str, Any]) -> dict[str, Any] | None:
        if row["page_path"] == "/drop":
            return None
        if row["page_path"] == "/boom":
            raise RuntimeError("hook bug")
        row["event_data"] = {"hooked": True}
        return row

    w = EventWriter(db_url, _settings(), before_store=hook,
                    privacy=PrivacyStep(_settings(), _no_tokens))
    try:
        for path in ("/keep", "/drop", "/boom"):
            w.submit(event(page_path=path))
        assert w.flush(10) == 0
    finally:
        w.close(5)
    rows = conn.execute("SELECT page_path, event_data FROM user_activity_events").fetchall()
    assert rows == [("/keep", {"hooked": True})]
    assert w.stats()["skipped_by_hook"] == 1 and w.stats()["dropped"]["before_store_error"] == 1


def test_a_forked_child_gets_its_own_thread_and_connection(
        writer: EventWriter, conn: psycopg.Connection[Any]) -> None:
    writer.submit(event(page_path="/parent"))
    assert writer.flush(10) == 0
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread did not survive the fork
        code = 1
        try:
            ok = writer.submit(event(page_path="/child"))
            code = 0 if ok and writer.flush(10) == 0 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    writer.submit(event(page_path="/parent-again"))
    assert writer.flush(10) == 0
    paths = {r[0] for r in conn.execute("SELECT page_path FROM user_activity_events")}
    assert paths == {"/parent", "/child", "/parent-again"}


SIGTERM_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from backend import create_app, track
    app = create_app({"WAYMARK_DATABASE_URL": sys.argv[1], "WAYMARK_JWT_SECRET": "x" * 40,
                      "WAYMARK_FLUSH_INTERVAL": 30, "WAYMARK_BATCH_SIZE": 100000})
    for i in range(400):
        assert track("task_completed", page_path=f"/t{i}")
    print("queued", flush=True)
    time.sleep(60)  # SIGTERM arrives here, with 400 events still queued
""")


def test_sigterm_with_queued_events_writes_them_all(db_url: str,
                                                    conn: psycopg.Connection[Any]) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_SCRIPT, db_url],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "queued"
        assert count(conn, "user_activity_events") == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert count(conn, "user_activity_events", "event_type = 'task_completed'") == 400


@pytest.fixture
def private_server(tmp_path: Any) -> Iterator[Any]:
    """An embedded PostgreSQL of this test's own, so it can be stopped and started again."""
    server = pgserver.get_server(tmp_path / "pg", cleanup_mode="delete")
    migrations.migrate(server.get_uri())
    yield server
    server.cleanup()


def _restart(server: Any, down_for: float, stopped: threading.Event) -> None:
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user,
           timeout=30)
    stopped.set()
    time.sleep(down_for)
    server.ensure_postgres_running()


def test_database_down_for_seconds_mid_stream_loses_and_duplicates_nothing(
        private_server: Any) -> None:
    """Events arrive before, during and after a 3 s outage (whatever the machine's speed)."""
    url = private_server.get_uri()
    w = EventWriter(url, _settings(batch_size=100, flush_interval=0.05),
                    privacy=PrivacyStep(_settings(), _no_tokens))
    submitted = 0

    def submit(count: int) -> int:
        nonlocal submitted
        ok = sum(w.submit(event(page_path=f"/e{submitted + i}", client=True))
                 for i in range(count))
        submitted += count
        return ok

    try:
        accepted = submit(1000)
        time.sleep(0.2)
        stopped = threading.Event()
        restarter = threading.Thread(target=_restart, args=(private_server, 3.0, stopped))
        restarter.start()
        while not stopped.wait(0.05):  # stopping: the writer is mid-stream
            accepted += submit(50)
        for _ in range(10):  # down
            accepted += submit(100)
            time.sleep(0.1)
        restarter.join()
        accepted += submit(500)  # up again
        assert w.flush(60) == 0
    finally:
        w.close(5)
    assert accepted == submitted
    with psycopg.connect(url) as check:
        total = check.execute("SELECT count(*), count(DISTINCT page_path) "
                              "FROM user_activity_events").fetchone()
    assert total == (submitted, submitted)
    assert w.stats()["retried"] > 0


def test_an_event_id_already_stored_falls_back_to_on_conflict(
        writer: EventWriter, conn: psycopg.Connection[Any]) -> None:
    first = event(page_path="/first")
    writer.submit(first)
    assert writer.flush(10) == 0
    again = event(page_path="/again")
    again["row"]["event_id"] = first["row"]["event_id"]
    writer.submit(again)
    writer.submit(event(page_path="/new"))
    assert writer.flush(10) == 0
    paths = sorted(r[0] for r in conn.execute("SELECT page_path FROM user_activity_events"))
    assert paths == ["/first", "/new"]
    stats = writer.stats()
    assert stats["conflict_fallbacks"] == 1 and stats["duplicates"] == 1
    assert stats["dead_lettered"] == 0


def test_a_duplicate_in_a_batch_with_a_launch_ping_keeps_the_launch(
        writer: EventWriter, conn: psycopg.Connection[Any]) -> None:
    first = event(page_path="/first", client=True)
    writer.submit(first)
    assert writer.flush(10) == 0
    now = datetime.now(UTC)
    ping = {"kind": "session", "received_at": now, "user_id": None,
            "client": items.client("192.0.2.1", CHROME_UA, "https://a.example", None),
            "row": {"occurred_at": now, "page_path": "/launch", "source": "client"}}
    again = event(page_path="/again", client=True)
    again["row"]["event_id"] = first["row"]["event_id"]
    for item in (ping, again, event(page_path="/new", client=True)):
        writer.submit(item)
    assert writer.flush(10) == 0
    assert count(conn, "user_sessions", "is_app_launch") == 1
    assert count(conn, "user_activity_events") == 2
    assert writer.stats()["conflict_fallbacks"] == 1


def test_event_data_that_is_not_json_sends_only_its_row_to_the_dead_letters(
        writer: EventWriter, conn: psycopg.Connection[Any]) -> None:
    batch = [event(page_path=f"/j{i}") for i in range(10)]
    batch[3]["row"]["event_data"] = {"tags": {"a", "b"}}  # a set: not JSON
    for item in batch:
        assert writer.submit(item)
    assert writer.flush(30) == 0
    assert count(conn, "user_activity_events") == 9
    dead = conn.execute("SELECT kind, payload->>'page_path' FROM waymark.dead_letters").fetchall()
    assert dead == [("event", "/j3")]


def test_a_batch_prepared_before_the_previous_one_is_written_continues_its_sessions(
        db_url: str, conn: psycopg.Connection[Any]) -> None:
    settings = _settings()
    preparer = BatchPreparer(settings, PrivacyStep(settings, _no_tokens), None, Contention())
    store = Store(Counter(), Contention())
    user = uuid.uuid4()
    start = datetime.now(UTC) - timedelta(hours=1)
    first = [event(user, occurred_at=start + timedelta(minutes=i)) for i in range(3)]
    second = [event(user, occurred_at=start + timedelta(minutes=10 + i)) for i in range(2)]
    with psycopg.connect(db_url, autocommit=True) as side, \
            psycopg.connect(db_url, autocommit=True) as main:
        one = preparer.prepare(lambda: side, first, 1).batch
        two = preparer.prepare(lambda: side, second, 2).batch  # batch 1 is not written yet
        assert one.joined is not None and two.joined is not None
        store.write(main, [one])
        preparer.finished(1)
        store.write(main, [two])
    assert conn.execute("SELECT event_count, page_count FROM user_sessions WHERE user_id = %s",
                        (user,)).fetchall() == [(5, 5)]
    assert conn.execute("SELECT count(DISTINCT session_id) FROM user_activity_events "
                        "WHERE user_id = %s", (user,)).fetchone() == (1,)


def test_the_preparing_step_knows_when_a_request_waits_for_the_batch(
        writer: EventWriter, conn: psycopg.Connection[Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch an ingestion request waits for is prepared without rests (``pacing``); one
    queued fire-and-forget is prepared as before."""
    seen: list[tuple[int, bool]] = []
    prepare = BatchPreparer.prepare

    def recording(self: BatchPreparer, connect: Any, items_: list[Any], seq: int = 0, *,
                  waited: bool = False) -> Any:
        seen.append((len(items_), waited))
        return prepare(self, connect, items_, seq, waited=waited)

    monkeypatch.setattr(BatchPreparer, "prepare", recording)
    assert writer.submit(event(page_path="/fire-and-forget"))
    assert writer.flush(10) == 0
    receipt = Receipt(2)
    assert writer.submit_all([event(page_path="/a"), event(page_path="/b")], receipt)
    assert receipt.wait(10)
    assert seen == [(1, False), (2, True)]
    assert count(conn, "user_activity_events") == 3
