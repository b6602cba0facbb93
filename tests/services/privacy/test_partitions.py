"""The events table's week partitions (issue 18): made ahead, boundaries, late events,
idempotency across partitions, purge by drop, anonymize by rewrite, and the in-place
migration of a populated table with inserts running."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from ingestion_support import count

from backend import migrations
from backend.config import Settings
from backend.db import Database
from backend.scripts.cli import main
from backend.services.ingest import items
from backend.services.ingest.privacy_step import PrivacyStep
from backend.services.ingest.writer import EventWriter
from backend.services.privacy import forget, partitions, retention

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
MONDAY = TODAY - timedelta(days=TODAY.weekday())


def _partition_of(conn: psycopg.Connection[Any], event_id: uuid.UUID) -> str:
    row = conn.execute("SELECT tableoid::regclass::text FROM user_activity_events "
                       "WHERE event_id = %s", (event_id,)).fetchone()
    assert row is not None, "event not stored"
    return str(row[0])


def _week_name(moment: datetime | date) -> str:
    """The partition of the ISO week holding ``moment``: named after its Monday."""
    return f"user_activity_events_p{_monday(moment):%Y%m%d}"


def _monday(moment: datetime | date) -> date:
    day = moment.date() if isinstance(moment, datetime) else moment
    return day - timedelta(days=day.weekday())


def _weeks(first: datetime, last: datetime) -> int:
    """How many ISO weeks from ``first``'s to ``last``'s, both counted."""
    return (_monday(last) - _monday(first)).days // 7 + 1


def _insert(conn: psycopg.Connection[Any], occurred_at: datetime) -> uuid.UUID:
    event_id = uuid.uuid4()
    conn.execute("INSERT INTO user_activity_events (event_id, occurred_at, event_type) "
                 "VALUES (%s, %s, 'page_view')", (event_id, occurred_at))
    return event_id


def _settings() -> Settings:
    return Settings(batch_size=500, flush_interval=0.2, queue_size=10_000)


def _no_tokens(token: str) -> tuple[uuid.UUID | None, float]:
    return None, time.time() + 60


# ------------------------------------------------------------------ made ahead, boundaries


def test_migrate_makes_a_partition_per_week_from_a_month_back_to_two_weeks_ahead(
        conn: psycopg.Connection[Any], db_url: str) -> None:
    names = _names(conn)
    wanted = {_week_name(TODAY + timedelta(days=d)) for d in range(-31, 15)}
    assert wanted <= names and "user_activity_events_default" in names
    assert len(names - {"user_activity_events_default"}) == _weeks(TODAY - timedelta(days=31),
                                                                   TODAY + timedelta(days=14))
    beyond = MONDAY + timedelta(days=21)  # the first Monday after today + 14 days
    assert _week_name(beyond) not in names
    with psycopg.connect(db_url, autocommit=True) as c:
        assert migrations.ensure_event_partitions(c, ahead=21) == 1
        assert migrations.ensure_event_partitions(c, ahead=21) == 0  # idempotent
    assert _partition_of(conn, _insert(conn, beyond + timedelta(days=6, hours=23))) \
        == _week_name(beyond)


def test_a_week_runs_from_monday_midnight_utc(conn: psycopg.Connection[Any]) -> None:
    monday = MONDAY + timedelta(days=7)
    at = _insert(conn, monday)
    before = _insert(conn, monday - timedelta(microseconds=1))
    assert monday.weekday() == 0 and _week_name(monday).endswith(f"{monday:%Y%m%d}")
    assert _partition_of(conn, at) == _week_name(monday)
    assert _partition_of(conn, before) == _week_name(MONDAY)
    bounds = conn.execute("SELECT from_at, to_at FROM waymark.event_partitions "
                          "WHERE partition = %s", (_week_name(monday),)).fetchone()
    assert bounds == (monday, monday + timedelta(days=7))


def test_an_event_of_a_week_without_partition_waits_in_the_default_and_moves_in(
        conn: psycopg.Connection[Any], db_url: str) -> None:
    far = TODAY + timedelta(days=40, hours=5)
    event_id = _insert(conn, far)
    conn.commit()
    assert _partition_of(conn, event_id) == "user_activity_events_default"
    with psycopg.connect(db_url, autocommit=True) as c:
        made = migrations.ensure_event_partitions(c, ahead=40)
    assert made == _weeks(TODAY + timedelta(days=14), far) - 1
    assert _partition_of(conn, event_id) == _week_name(far)
    assert count(conn, "user_activity_events_default") == 0


def test_a_late_event_31_days_back_lands_in_its_old_partition(db_url: str,
                                                              conn: psycopg.Connection[Any]
                                                              ) -> None:
    now = datetime.now(UTC)
    late = now - timedelta(days=31) + timedelta(minutes=10)
    writer = EventWriter(db_url, _settings(), privacy=PrivacyStep(_settings(), _no_tokens))
    try:
        row = items.event_row("page_view", now, occurred_at=late)
        assert writer.submit({"kind": "event", "row": row, "received_at": now, "client": None,
                              "user_id": None})
        assert writer.flush(10) == 0
    finally:
        writer.close(5)
    assert _partition_of(conn, row["event_id"]) == _week_name(late)


def test_a_retry_a_day_later_is_stored_once(db_url: str, conn: psycopg.Connection[Any]) -> None:
    """The retry arrives the next day (another received_at, another day's partition being
    written) but carries its occurred_at: it meets its first copy in that day's partition."""
    now = datetime.now(UTC)
    occurred = now - timedelta(hours=1)
    event_id = uuid.uuid4()
    writer = EventWriter(db_url, _settings(), privacy=PrivacyStep(_settings(), _no_tokens))
    try:
        for received in (now, now + timedelta(days=1), now + timedelta(days=1, hours=2)):
            row = items.event_row("quest_started", received, occurred_at=occurred,
                                  event_id=event_id)
            assert writer.submit({"kind": "event", "row": row, "received_at": received,
                                  "client": None, "user_id": None})
            assert writer.flush(10) == 0
    finally:
        writer.close(5)
    assert count(conn, "user_activity_events", "event_id = %s", (event_id,)) == 1
    first = conn.execute("SELECT received_at FROM user_activity_events WHERE event_id = %s",
                         (event_id,)).fetchone()
    assert first == (now,)  # the first copy stays; the retries changed nothing


# ------------------------------------------------------------------ purge and anonymize


def _old_day(db: Database, conn: psycopg.Connection[Any], days_ago: int, rows: int,
             user: uuid.UUID) -> str:
    """``rows`` events of ``user`` spread over the day ``days_ago`` days back; returns the
    partition of its week."""
    day = (TODAY - timedelta(days=days_ago)).date()
    with db.connection() as c:
        c.execute("SELECT waymark.ensure_event_partitions(%s, %s)", (day, day))
    conn.execute(
        "INSERT INTO user_activity_events (occurred_at, event_type, user_id, visitor_hash, "
        "session_id, page_path, utm_campaign, event_data) "
        "SELECT %(day)s::timestamptz + i * interval '1 day' / (%(rows)s + 1), 'quest_started', "
        "%(user)s, "
        "'\\x0102'::bytea, gen_random_uuid(), '/q/' || i || '/ann@example.com', "
        "'spring ann@example.com', jsonb_build_object('quest_id', 'q' || i, "
        "'note', 'call 020 7946 0958 or ann@example.com', 'email', 'ann@example.com') "
        "FROM generate_series(1, %(rows)s) i",
        {"day": datetime(day.year, day.month, day.day, tzinfo=UTC), "user": user, "rows": rows})
    conn.commit()
    return _week_name(day)


def _names(conn: psycopg.Connection[Any]) -> set[str]:
    """Every partition of the events."""
    return {r[0] for r in conn.execute(
        "SELECT inhrelid::regclass::text FROM pg_inherits "
        "WHERE inhparent = 'public.user_activity_events'::regclass")}


def test_purge_drops_whole_past_weeks_and_deletes_the_straddling_week_by_row(
        db: Database, conn: psycopg.Connection[Any]) -> None:
    user = uuid.uuid4()
    gone = _old_day(db, conn, 800, 50, user)
    straddle = _old_day(db, conn, 730, 50, user)  # the cut-off falls at 12:00 that day
    kept = _old_day(db, conn, 700, 50, user)
    now = TODAY + timedelta(hours=12)
    stats = retention.purge(db, now=now, older_than_days=730, collect_retention_days=30)
    names = _names(conn)
    assert gone not in names and {straddle, kept} <= names
    assert stats.partitions == 1
    remaining = conn.execute(f"SELECT count(*), min(occurred_at) FROM {straddle}").fetchone()  # noqa: S608
    assert remaining is not None and remaining[0] == 25
    assert remaining[1] >= now - timedelta(days=730)
    assert stats.rows["user_activity_events"] == 50 + 25
    assert count(conn, kept) == 50
    audit = conn.execute("SELECT details->>'partitions', (details->'rows'->>'user_activity_events')"
                         "::int FROM privacy_audit WHERE action = 'purge'").fetchone()
    assert audit == ("1", stats.rows["user_activity_events"])
    again = retention.purge(db, now=now, older_than_days=730, collect_retention_days=30)
    assert again.partitions == 0 and again.rows["user_activity_events"] == 0


def test_an_anonymized_week_straddling_the_deletion_age_goes_whole(
        db: Database, conn: psycopg.Connection[Any]) -> None:
    """Anonymized rows link to no one: the straddling week is not deleted a day at a time
    (every row of it would be, one night after another) but dropped once wholly past."""
    user = uuid.uuid4()
    straddle = _old_day(db, conn, 730, 50, user)  # the cut-off falls at 12:00 that day
    now = TODAY + timedelta(hours=12)
    assert retention.anonymize(db, now=now, older_than_days=90, pii_keys=()).partitions >= 1
    kept = retention.purge(db, now=now, older_than_days=730, collect_retention_days=30)
    assert straddle in _names(conn) and count(conn, straddle) == 50
    assert kept.rows["user_activity_events"] == 0
    week_end = _monday(TODAY - timedelta(days=730)) + timedelta(days=7)
    later = datetime(week_end.year, week_end.month, week_end.day, tzinfo=UTC) \
        + timedelta(days=730, hours=1)
    gone = retention.purge(db, now=later, older_than_days=730, collect_retention_days=30)
    assert straddle not in _names(conn)
    assert gone.partitions >= 1 and gone.rows["user_activity_events"] >= 50


def _anonymized_rows(conn: psycopg.Connection[Any], table: str) -> list[tuple[Any, ...]]:
    """The rows of the first half of the day (before a 12:00 cut-off), without their date."""
    return conn.execute(
        f"SELECT extract(epoch FROM occurred_at - date_trunc('day', occurred_at)) AS s, "  # noqa: S608
        f"user_id, visitor_hash, session_id, page_path, utm_campaign, event_data, "
        f"anonymized_at IS NOT NULL FROM {table} "
        f"WHERE occurred_at - date_trunc('day', occurred_at) < interval '12 hours' "
        f"ORDER BY 1").fetchall()


def test_anonymize_rewrites_closed_weeks_exactly_as_the_row_path_would(
        db: Database, conn: psycopg.Connection[Any]) -> None:
    """A short anonymization age (10 days) reaches a week that may still receive late
    events: that one goes row by row (only rows past the cut-off), the closed week is
    rewritten whole, and both leave the same rows."""
    user = uuid.uuid4()
    whole = _old_day(db, conn, 120, 40, user)
    recent = _old_day(db, conn, 10, 40, user)   # cut-off at 12:00: 20 rows before it
    now = TODAY + timedelta(hours=12)
    index_before = conn.execute(
        "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass", (whole,)).fetchone()
    stats = retention.anonymize(db, now=now, older_than_days=10, pii_keys=("email",))
    assert stats.partitions == 1
    assert stats.rows["user_activity_events"] == 40 + 20
    assert whole in _names(conn)
    index_after = conn.execute(
        "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass", (whole,)).fetchone()
    assert index_after == index_before  # swapped in with every index, under the old name
    rewritten, by_row = _anonymized_rows(conn, whole), _anonymized_rows(conn, recent)
    assert len(rewritten) == 20 and rewritten == by_row  # the same rows, one path each
    assert count(conn, recent, "anonymized_at IS NULL") == 20  # after the cut-off: kept
    seconds, user_id, visitor, session, path, campaign, data, marked = rewritten[0]
    assert (user_id, visitor, session, marked) == (None, None, None, True)
    assert "ann@example.com" not in f"{path}{campaign}{data}"
    assert "email" not in data and data["quest_id"] == "q1"
    registry = conn.execute("SELECT anonymized_at FROM waymark.event_partitions "
                            "WHERE partition = %s", (whole,)).fetchone()
    assert registry == (now,)
    again = retention.anonymize(db, now=now, older_than_days=10, pii_keys=("email",))
    assert again.partitions == 0 and again.rows["user_activity_events"] == 0


def test_a_week_is_anonymized_whole_as_soon_as_it_begins_before_the_cutoff(
        db: Database, conn: psycopg.Connection[Any]) -> None:
    """Early rather than late: the rows of the straddling week after the cut-off lose
    their link to a person too (at most six days early), and the next week is untouched."""
    user = uuid.uuid4()
    straddle = _old_day(db, conn, 90, 40, user)  # cut-off at 12:00 that day
    later_week = _old_day(db, conn, 90 - 7, 40, user)
    now = TODAY + timedelta(hours=12)
    stats = retention.anonymize(db, now=now, older_than_days=90, pii_keys=())
    assert stats.partitions == 1 and stats.rows["user_activity_events"] == 40
    assert count(conn, straddle, "user_id IS NULL AND anonymized_at IS NOT NULL") == 40
    youngest = conn.execute(f"SELECT max(occurred_at) FROM {straddle}").fetchone()  # noqa: S608
    assert youngest is not None and youngest[0] > now - timedelta(days=90)  # some were early
    assert count(conn, later_week, "user_id = %s AND anonymized_at IS NULL", (user,)) == 40


def test_a_forget_during_a_rewrite_is_not_undone(db: Database, conn: psycopg.Connection[Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget deletes the user's rows after the rewrite copied them: the swap sees the edit
    counter moved and keeps the day as it is (anonymized row by row instead)."""
    gone_user, other = uuid.uuid4(), uuid.uuid4()
    day = _old_day(db, conn, 120, 30, gone_user)
    conn.execute(f"UPDATE {day} SET user_id = %s WHERE extract(hour FROM occurred_at) >= 12",  # noqa: S608
                 (other,))
    conn.commit()
    original = partitions._with_lock_timeout
    forgot: list[forget.ForgetReceipt] = []

    def forget_first(database: Database, change: Any) -> bool:
        if not forgot:
            forgot.append(forget.forget_user(database, gone_user, now=datetime.now(UTC)))
        return original(database, change)

    monkeypatch.setattr(partitions, "_with_lock_timeout", forget_first)
    stats = retention.anonymize(db, now=TODAY, older_than_days=90, pii_keys=())
    assert forgot and forgot[0].rows_removed["user_activity_events"] == 15
    assert stats.partitions == 0  # the rewrite was refused ...
    assert count(conn, day) == 15  # ... so the forgotten rows did not come back
    assert count(conn, day, "user_id IS NULL AND anonymized_at IS NOT NULL") == 15
    assert conn.execute("SELECT to_regclass(%s)", (f"public.{day}_rw",)).fetchone() == (None,)
    monkeypatch.setattr(partitions, "_with_lock_timeout", original)
    later = retention.anonymize(db, now=TODAY, older_than_days=90, pii_keys=())
    assert later.partitions == 1 and count(conn, day) == 15  # rewritten whole next run


# ------------------------------------------------------------------ migrating in place


def test_a_populated_table_is_partitioned_in_place_while_inserts_go_on(
        empty_db_url: str, tmp_path: Path) -> None:
    before = tmp_path / "sql"
    before.mkdir()
    for path in migrations.SQL_DIR.glob("*.sql"):
        if path.name < "0150":
            shutil.copy(path, before / path.name)
    shutil.copytree(migrations.SQL_DIR / "functions", before / "functions")
    migrations.migrate(empty_db_url, before)
    with psycopg.connect(empty_db_url, autocommit=True) as c:
        c.execute("INSERT INTO user_activity_events (occurred_at, event_type, user_id) "
                  "SELECT now() - (i % 400) * interval '1 day', 'page_view', gen_random_uuid() "
                  "FROM generate_series(1, 20000) i")
    written: list[uuid.UUID] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def keep_inserting() -> None:
        with psycopg.connect(empty_db_url, autocommit=True) as c:
            while not stop.is_set():
                event_id = uuid.uuid4()
                try:
                    c.execute("INSERT INTO user_activity_events (event_id, occurred_at, "
                              "event_type) VALUES (%s, now(), 'page_view') ON CONFLICT DO NOTHING",
                              (event_id,))
                    written.append(event_id)
                except psycopg.Error as exc:  # any refused insert fails the test
                    failures.append(exc)
                time.sleep(0.002)

    inserter = threading.Thread(target=keep_inserting)
    inserter.start()
    try:
        time.sleep(0.3)
        applied = migrations.migrate(empty_db_url)
        time.sleep(0.3)
    finally:
        stop.set()
        inserter.join(10)
    assert failures == []
    assert applied[:3] == ["0150_event_partitions_prepare", "0151_event_partitions_validate",
                           "0152_partition_events"]
    with psycopg.connect(empty_db_url) as c:
        kind = c.execute("SELECT relkind FROM pg_class "
                         "WHERE oid = 'public.user_activity_events'::regclass").fetchone()
        assert kind == ("p",)
        legacy = c.execute("SELECT count(*) FROM user_activity_events_legacy").fetchone()
        assert legacy is not None and legacy[0] == 20000 + len(written)
        stored = c.execute("SELECT count(*) FROM user_activity_events WHERE event_id = ANY(%s)",
                           (written,)).fetchone()
        assert stored == (len(written),) and len(written) > 50
        # what the API role could read it still reads, through the parent only
        grants = c.execute("SELECT has_table_privilege('authenticated', 'public.user_activity_events', "
                           "'SELECT'), has_table_privilege('authenticated', "
                           "'public.user_activity_events_legacy', 'SELECT')").fetchone()
        assert grants == (True, False)
        policies = c.execute("SELECT count(*) FROM pg_policy "
                             "WHERE polrelid = 'public.user_activity_events'::regclass").fetchone()
        assert policies == (1,)
        # the week after the cut-over (a Monday) has its own partition; a retry of an old event is
        # still stored once (the legacy table keeps its primary key)
        cutover = c.execute("SELECT to_at FROM waymark.event_partitions "
                            "WHERE partition = 'user_activity_events_legacy'").fetchone()
        assert cutover is not None and cutover[0].weekday() == 0
        assert cutover[0] == cutover[0].replace(hour=0, minute=0, second=0, microsecond=0)
        new = c.execute("INSERT INTO user_activity_events (occurred_at, event_type) "
                        "VALUES (%s, 'page_view') RETURNING tableoid::regclass::text",
                        (cutover[0] + timedelta(hours=1),)).fetchone()
        assert new == (_week_name(cutover[0]),)
        old_id = written[0]
        again = c.execute("INSERT INTO user_activity_events (event_id, occurred_at, event_type) "
                          "SELECT event_id, occurred_at, event_type FROM user_activity_events "
                          "WHERE event_id = %s ON CONFLICT DO NOTHING", (old_id,))
        assert again.rowcount == 0


def test_rollup_and_the_partitions_command_keep_the_week_ahead(db_url: str,
                                                               conn: psycopg.Connection[Any]
                                                               ) -> None:
    """The window moves: a week that was beyond the window (as it will be one day) is made
    by the next rollup; `waymark partitions --ahead` goes further and says what is there."""
    furthest = _week_name(TODAY + timedelta(days=14))
    conn.execute("DELETE FROM waymark.event_partitions WHERE partition = %s", (furthest,))
    conn.execute(f"DROP TABLE {furthest}")
    conn.commit()
    rolled = CliRunner().invoke(main, ["rollup"], env={"DATABASE_URL": db_url},
                                catch_exceptions=False)
    assert rolled.exit_code == 0 and "partitions=1" in rolled.output
    assert furthest in _names(conn)
    listed = CliRunner().invoke(main, ["partitions", "--ahead", "28"],
                                env={"DATABASE_URL": db_url}, catch_exceptions=False)
    line = listed.output.strip().splitlines()[-1]
    made = _weeks(TODAY + timedelta(days=14), TODAY + timedelta(days=28)) - 1
    weeks = _weeks(TODAY - timedelta(days=31), TODAY + timedelta(days=28))
    assert listed.exit_code == 0 and made == 2
    assert line.startswith(f"waymark partitions: made={made} weeks={weeks} ")
    assert "anonymized=0 legacy=no" in line
