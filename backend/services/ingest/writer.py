"""The background event writer: a bounded queue drained by one daemon thread into PostgreSQL.

Request threads only call :meth:`EventWriter.submit` (a ``put_nowait``). The thread, started
lazily and re-created after ``fork``, takes batches by size or time and prepares them (privacy
step, session segments and their open sessions, the batch's whole binary COPY payload); a
second thread writes each prepared batch in one transaction: ``LOCK_SHARED`` (the forget contract), the tombstone
filter, ``COPY`` (through a staging table and ``INSERT … ON CONFLICT (event_id) DO NOTHING``
when an id is already stored), the session upsert. Transient failures keep the batch in memory and retry
with capped backoff; a data error splits the batch until the bad row is alone, and that row
goes to ``waymark.dead_letters`` with its SQLSTATE. "Accepted" means "in the queue" and an
accepted event is written unless the process dies before :meth:`flush` could finish.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import threading
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from backend.config import Settings
from backend.db import is_transient
from backend.services.ingest import copy_payload, error_groups
from backend.services.ingest import session_segments as sessions
from backend.services.ingest.copy_payload import COLUMNS_SQL, EVENT_COLUMNS, EVENT_TYPES_SQL
from backend.services.ingest.items import new_id
from backend.services.ingest.pacing import Contention, Pacer
from backend.services.ingest.privacy_step import PrivacyStep, Verifier
from backend.services.privacy.tombstones import LOCK_SHARED, NOT_FORGOTTEN

log = logging.getLogger("waymark.writer")

BeforeStore = Callable[[dict[str, Any]], dict[str, Any] | None]

__all__ = ["EVENT_COLUMNS", "EVENT_TYPES_SQL", "EventWriter"]
_COLS = COLUMNS_SQL

#: the first round trip of every batch: begin, the forget contract's shared lock, the
#: savepoint a duplicate event id rolls back to, and whether any tombstone is alive (almost
#: never: then nobody needs filtering).
PREPARE = f"""BEGIN;
{LOCK_SHARED};
SAVEPOINT wm_events;
SELECT EXISTS (SELECT 1 FROM waymark.forgotten_users WHERE expires_at > now())"""  # noqa: S608
CREATE_STAGE = """CREATE TEMP TABLE IF NOT EXISTS wm_stage_events
    (LIKE public.user_activity_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"""
COPY_EVENTS = f"COPY wm_stage_events ({_COLS}) FROM STDIN (FORMAT BINARY)"  # noqa: S608
INSERT_EVENTS = f"""
INSERT INTO public.user_activity_events ({_COLS})
SELECT {_COLS} FROM wm_stage_events s WHERE {NOT_FORGOTTEN}
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""  # noqa: S608 - constants only
COPY_DIRECT = f"COPY public.user_activity_events ({_COLS}) FROM STDIN (FORMAT BINARY)"  # noqa: S608
#: users of the batch who were just forgotten (asked only while a tombstone is alive).
FORGOTTEN_USERS = f"""
SELECT s.user_id FROM unnest(%s::uuid[]) AS s(user_id) WHERE NOT {NOT_FORGOTTEN}
"""  # noqa: S608 - constants only
DEAD_LETTER = """
INSERT INTO waymark.dead_letters (kind, sqlstate, error, payload)
VALUES (%(kind)s, %(sqlstate)s, %(error)s, %(payload)s::jsonb)
"""

BACKOFF_FIRST = 0.05
BACKOFF_CAP = 2.0
IDLE_POLL = 0.1
#: with a backlog of at least one batch, a batch may grow to this many times batch_size.
BACKLOG_FACTOR = 8
HURRY_POLL = 0.05  # how soon a waiting batch notices flush()
#: a batch of DEEP_BACKLOG × batch_size or more: the writer is behind (see ``pacing``)
DEEP_BACKLOG = 4
#: items between two looks at the clock
PACE_EVERY = 4


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, uuid.UUID | datetime):
        return str(value)
    return value


class EventWriter:
    """Owns the queue and the writer thread of one process (see the module docstring)."""

    def __init__(self, url: str, settings: Settings, *, before_store: BeforeStore | None = None,
                 privacy: PrivacyStep | None = None, verify: Verifier | None = None,
                 name: str = "waymark-writer",
                 autostart: bool = True, backlog_factor: int = BACKLOG_FACTOR) -> None:
        self.url = url
        self.settings = settings
        self.before_store = before_store
        self.privacy = privacy or PrivacyStep(settings, verify)
        self.name = name
        self.autostart = autostart
        self.backlog_factor = max(1, backlog_factor)
        self.counters: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._reset_process_state()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _after_fork(ref))

    def _reset_process_state(self) -> None:
        """Fresh queue, thread slot and connection: at start, and in a forked child."""
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=self.settings.queue_size)
        self._thread: threading.Thread | None = None
        self._db_thread: threading.Thread | None = None
        #: prepared batches waiting for the database stage (at most two: memory stays bounded)
        self._handoff: queue.Queue[tuple[int, int, dict[str, list[dict[str, Any]]]] | None] = \
            queue.Queue(maxsize=2)
        #: batch numbers: the last one prepared, the last one the database stage finished,
        #: and the last one with app-launch pings (sessions the next batches must see)
        self._prepared_seq = self._done_seq = self._ping_seq = 0
        self._in_flight = sessions.InFlight()
        self._contention = Contention()
        self._conn: psycopg.Connection[Any] | None = None
        self._salt_conn: psycopg.Connection[Any] | None = None
        self._stop = threading.Event()
        self._hurry = threading.Event()
        self._give_up_at: float | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.privacy.salts.forget()

    # ---- the request-thread side -------------------------------------------------------

    def submit(self, item: dict[str, Any]) -> bool:
        """Queue one item without blocking; False (and counted) when full or closed."""
        if self._thread is None and self.autostart:
            self._start()
        if self._closed:
            self.dropped["closed"] += 1
            return False
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped["queue_full"] += 1
            return False
        self.counters["accepted"] += 1
        return True

    def submit_all(self, batch: list[dict[str, Any]]) -> bool:
        """Queue every item of a batch, or none (False, counted) when they do not all fit.

        All-or-nothing under the queue's own lock, so a client told 503 resends the whole
        batch and one told 202 can forget it: no batch is ever half accepted.
        """
        if self._thread is None and self.autostart:
            self._start()
        if self._closed:
            self.dropped["closed"] += len(batch)
            return False
        q = self._queue
        with q.not_full:
            if q.maxsize - q._qsize() < len(batch):
                self.dropped["queue_full"] += len(batch)
                return False
            for item in batch:
                q._put(item)
            q.unfinished_tasks += len(batch)
            q.not_empty.notify(len(batch))
        self.counters["accepted"] += len(batch)
        return True

    def start(self) -> None:
        """Start the threads now (``submit`` does it lazily unless ``autostart=False``)."""
        self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                db_thread = threading.Thread(target=self._run_db, name=f"{self.name}-db",
                                             daemon=True)
                db_thread.start()
                self._db_thread = db_thread
                thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                thread.start()
                self._thread = thread

    def flush(self, timeout: float = 5.0) -> int:
        """Write everything queued so far; returns how many items are still unwritten."""
        self._hurry.set()
        deadline = time.monotonic() + timeout
        done = self._queue.all_tasks_done
        with done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                    break
                done.wait(min(remaining, 0.1))
            left = self._queue.unfinished_tasks
        self._hurry.clear()
        return int(left)

    def close(self, timeout: float = 5.0) -> None:
        """Refuse new items, flush within ``timeout``, stop the thread and disconnect."""
        self._closed = True
        left = self.flush(timeout)
        if left:
            log.error("waymark writer: %d accepted events could not be written before exit", left)
            self.dropped["unwritten_at_exit"] += left
        self._give_up_at = time.monotonic()
        self._stop.set()
        for thread in (self._thread, self._db_thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=1.0)
        self._disconnect()
        self._disconnect_salts()

    def is_crawler(self, user_agent: str | None) -> bool:
        """Whether a request comes from a crawler (counted as dropped): app-launch pings
        answer 204 for crawlers at once instead of queueing what would be dropped anyway."""
        if self.privacy.reduce(user_agent or "").bot_reason is None:
            return False
        self.dropped["crawler:sessions"] += 1
        return True

    def drop_user(self, user_id: uuid.UUID | str) -> int:
        """Remove still-queued items that name ``user_id`` (forget runs this before deleting)."""
        target = str(user_id).lower()
        removed = 0
        with self._queue.mutex:
            kept = []
            for item in self._queue.queue:
                if str(item.get("user_id") or "").lower() == target:
                    removed += 1
                else:
                    kept.append(item)
            if removed:
                self._queue.queue.clear()
                self._queue.queue.extend(kept)
                self._queue.unfinished_tasks -= removed
                if not self._queue.unfinished_tasks:
                    self._queue.all_tasks_done.notify_all()
                self._queue.not_full.notify(removed)
        self.dropped["forgotten"] += removed
        return removed

    def stats(self) -> dict[str, Any]:
        """Counters for ``/health``: accepted, written, retried, dropped by reason, queue depth."""
        return {
            "queue_depth": self._queue.qsize(),
            "queue_size": self._queue.maxsize,
            "running": bool(self._thread and self._thread.is_alive()),
            **{k: self.counters.get(k, 0) for k in (
                "accepted", "written", "duplicates", "retried", "dead_lettered", "batches",
                "errors_written", "sessions_touched", "skipped_by_hook", "conflict_fallbacks")},
            "invalid_tokens": self.privacy.invalid_tokens,
            "dropped": dict(self.dropped),
        }

    # ---- the writer thread --------------------------------------------------------------

    def _run(self) -> None:
        """Stage 1 (the named thread): gather batches and run the privacy step on them."""
        while True:
            batch = self._collect()
            if batch is None:
                self._handoff.put(None)
                return
            prepared = None
            self._prepared_seq += 1
            seq = self._prepared_seq
            try:
                prepared = self._retrying(len(batch), partial(self._prepare, None, batch, seq),
                                          self._disconnect_salts)
            except Exception:  # noqa: BLE001 - the thread must survive anything
                log.exception("waymark writer: preparing a batch of %d failed", len(batch))
                self.dropped["internal_error"] += len(batch)
            if prepared is None:
                self._done_seq = seq
                self._done(len(batch))
            else:
                self._handoff.put((seq, len(batch), prepared))  # waits while the DB is 2 behind

    def _run_db(self) -> None:
        """Stage 2: write prepared batches, in order, while stage 1 prepares the next one."""
        while True:
            job = self._handoff.get()
            if job is None:
                return
            seq, count, prepared = job
            try:
                self._retrying(count, partial(self._write_split, None, prepared),
                               self._disconnect)
            except Exception:  # noqa: BLE001 - the thread must survive anything
                log.exception("waymark writer: a batch of %d failed unexpectedly", count)
                self.dropped["internal_error"] += count
            finally:
                self._done_seq = seq
                self._done(count)

    def _done(self, count: int) -> None:
        """``task_done`` for ``count`` items at once."""
        done = self._queue.all_tasks_done
        with done:
            unfinished = self._queue.unfinished_tasks - count
            if unfinished < 0:
                raise ValueError("task_done() called too many times")
            self._queue.unfinished_tasks = unfinished
            if not unfinished:
                done.notify_all()

    def _take(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` queued items at once, without waiting (one lock, not one per item)."""
        q = self._queue
        with q.mutex:
            count = min(limit, len(q.queue))
            if not count:
                return []
            popleft = q.queue.popleft
            taken = [popleft() for _ in range(count)]
            q.not_full.notify(count)
        return taken

    def _collect(self) -> list[dict[str, Any]] | None:
        """Block for the first item, then gather up to ``batch_size`` or until the interval."""
        while True:
            try:
                first = self._queue.get(timeout=IDLE_POLL)
                break
            except queue.Empty:
                if self._stop.is_set():
                    return None
                self.privacy.expire_salts(datetime.now(UTC))
        batch = [first]
        deadline = time.monotonic() + self.settings.flush_interval
        size = self.settings.batch_size
        if self._queue.qsize() >= size:  # a backlog: fewer, larger transactions catch up faster
            size *= self.backlog_factor
        while len(batch) < size:
            more = self._take(size - len(batch))
            if more:
                batch.extend(more)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._hurry.is_set() or self._stop.is_set():
                break
            # then take what arrived meanwhile at once: waking for every item would take
            # the GIL from a busy host's requests once per item
            self._hurry.wait(min(remaining, HURRY_POLL))
        return batch

    def _retrying(self, count: int, action: Callable[[], Any],
                  reset: Callable[[], None]) -> Any:
        """Run ``action`` until it succeeds, retrying transient failures with capped backoff.

        Returns None when giving up at exit (the ``count`` items are counted as unwritten).
        """
        attempt = 0
        while True:
            try:
                return action()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                reset()
                if self._give_up_at is not None and time.monotonic() >= self._give_up_at:
                    log.error("waymark writer: giving up on %d events at exit: %s", count, exc)
                    self.dropped["unwritten_at_exit"] += count
                    return None
                self.counters["retried"] += 1
                delay = min(BACKOFF_CAP, BACKOFF_FIRST * (2 ** attempt))
                attempt += 1
                log.warning("waymark writer: database unavailable (%s); retry in %.2fs",
                            str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__,
                            delay)
                time.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter only

    def _prepare(self, conn: psycopg.Connection[Any] | None, batch: list[dict[str, Any]],
                 seq: int = 0) -> dict[str, list[dict[str, Any]]]:
        """Run the privacy step and the ``before_store`` hook; split rows by kind; encode the
        events' COPY values and find their sessions (while the previous batch is written)."""
        out: dict[str, list[dict[str, Any]]] = {"event": [], "error": [], "session": []}
        skipped: Counter[str] = Counter()
        deep = len(batch) >= DEEP_BACKLOG * self.settings.batch_size
        pause = Pacer(self._contention, backlog=deep)
        for index, item in enumerate(batch):
            if not index % PACE_EVERY:
                pause()
            result = self.privacy.apply(conn or self._salt_connection, item)
            if isinstance(result, str):
                skipped[f"crawler:{result}"] += 1
                continue
            if self.before_store is not None:
                try:
                    hooked = self.before_store(result)
                except Exception:  # noqa: BLE001 - a hook bug drops the event, never more
                    log.exception("waymark: before_store raised; the event is dropped")
                    skipped["before_store_error"] += 1
                    continue
                if hooked is None:
                    self.counters["skipped_by_hook"] += 1
                    continue
                result = hooked
            out[item.get("kind", "event")].append(result)
        self.dropped.update(skipped)
        out["event"] = _unique(out["event"])
        pause()
        segments = sessions.segments_of(out["event"])
        pause()
        out["_segments"] = segments  # type: ignore[assignment]
        if out["session"]:
            self._ping_seq = seq
        elif seq and segments and self._ping_seq <= self._done_seq:
            # the database shows every batch up to ``done``; the in-flight map the rest
            done = self._done_seq
            try:
                sessions.join_open_sessions(conn or self._salt_connection(), segments,
                                            self._in_flight)
            except psycopg.Error as exc:
                if is_transient(exc):
                    raise
                log.warning("waymark writer: finding open sessions failed (%s); the batch's "
                            "transaction will", exc)
                return out
            self._in_flight.forget_until(done)
            self._in_flight.remember(seq, segments)
            for segment in segments:
                session_id = segment.session_id
                for row in segment.rows:
                    row["session_id"] = session_id
            pause()
            out["_joined"] = [{"sessions": sessions.segments_json(segments)}]
        if out["event"] and ("_joined" in out or not segments and not out["session"]):
            # every session id is known (or there is none): the whole COPY, ready for the
            # database thread to send as it is
            try:
                out["_payload"] = copy_payload.encode(  # type: ignore[assignment]
                    out["event"], pause, PACE_EVERY)
            except Exception as exc:  # noqa: BLE001 - a row psycopg cannot dump
                log.debug("waymark writer: a row cannot be encoded (%s); the database "
                          "thread will find it", exc)
        return out

    def _write_split(self, conn: psycopg.Connection[Any] | None,
                     rows: dict[str, list[dict[str, Any]]]) -> None:
        """Write a batch; on a data error write each half, down to the single bad row."""
        conn = conn or self._connection()
        try:
            self._write(conn, rows)
            return
        except Exception as exc:
            if is_transient(exc):
                raise
            total = sum(len(v) for k, v in rows.items() if not k.startswith("_"))
            if total <= 1:
                self._dead_letter(conn, rows, exc)
                return
            log.warning("waymark writer: %s in a batch of %d; splitting it", exc, total)
        first: dict[str, list[dict[str, Any]]] = {}
        second: dict[str, list[dict[str, Any]]] = {}
        flat = [(kind, row) for kind, kind_rows in rows.items() if not kind.startswith("_")
                for row in kind_rows]
        half = len(flat) // 2
        for index, (kind, row) in enumerate(flat):
            row.pop("session_id", None)
            (first if index < half else second).setdefault(kind, []).append(row)
        self._write_split(conn, first)
        self._write_split(conn, second)

    def _write(self, conn: psycopg.Connection[Any], rows: dict[str, list[dict[str, Any]]]) -> None:
        """One transaction: lock, tombstone filter, sessions, events, errors.

        Events are COPYed straight into the table — as fast as PostgreSQL takes rows —
        after a savepoint. If one of them is already stored (a client's retry, or another
        process's copy of it), the COPY fails with a unique violation: back to the savepoint,
        then COPY into a staging table and ``INSERT … ON CONFLICT (event_id) DO NOTHING
        RETURNING``. Either way only rows really inserted are counted in their sessions.
        """
        events = rows.get("event", [])  # one row per event_id: ``_prepare`` saw to that
        segments: list[sessions.Segment] | None = rows.get("_segments")  # type: ignore[assignment]
        joined = "_joined" in rows
        payload: bytes | None = rows.get("_payload")  # type: ignore[assignment]
        with _transaction(conn, PREPARE) as tombstones, conn.cursor() as cur:
            if tombstones and events:
                kept = self._not_forgotten(cur, events)
                if len(kept) < len(events):
                    events, segments, joined, payload = kept, None, False, None
            assigned = sessions.assign_sessions(conn, events, rows.get("session", []), segments,
                                                joined=joined and segments is not None)
            inserted = self._insert_events(cur, events, bool(rows.get("session")), payload)
            written = len(events) if inserted is None else len(inserted)
            touched = sessions.upsert_sessions(
                conn, assigned, None if written == len(events) else inserted,
                rows["_joined"][0]["sessions"] if joined and segments is not None else None)
            errors = error_groups.write_errors(conn, rows.get("error", []))
        self.counters["written"] += written
        self.counters["duplicates"] += len(rows.get("event", [])) - written
        self.counters["errors_written"] += errors
        self.counters["sessions_touched"] += touched + len(rows.get("session", []))
        self.counters["batches"] += 1

    def _insert_events(self, cur: psycopg.Cursor[Any], events: list[dict[str, Any]],
                       pings: bool, payload: bytes | None = None) -> set[Any] | None:
        """COPY the events in; None when all went in directly, else the ids really inserted.

        ``payload`` is their COPY prepared beforehand (``copy_payload.encode``), else it is
        made here, after their session ids were given.
        """
        if not events:
            return None
        if payload is None:
            # inside the transaction: offers of the GIL, never a rest (see ``pacing``)
            payload = copy_payload.encode(events, Pacer(self._contention, rests=False),
                                          PACE_EVERY)
        if pings:  # the launches were upserted after PREPARE's savepoint: keep them
            cur.execute("SAVEPOINT wm_events")
        try:
            with cur.copy(COPY_DIRECT) as copy:
                copy.write(payload)
            return None
        except psycopg.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT wm_events")
        self.counters["conflict_fallbacks"] += 1
        cur.execute(CREATE_STAGE)
        with cur.copy(COPY_EVENTS) as copy:
            copy.write(payload)
        cur.execute(INSERT_EVENTS)
        return {event_id for (event_id,) in cur.fetchall()}

    @staticmethod
    def _not_forgotten(cur: psycopg.Cursor[Any],
                       events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows not of a user forgotten a moment ago (``NOT_FORGOTTEN``, under the lock)."""
        users = list({r["user_id"] for r in events if r.get("user_id") is not None})
        if not users:
            return events
        cur.execute(FORGOTTEN_USERS, (users,))
        gone = {user_id for (user_id,) in cur.fetchall()}
        return [r for r in events if r.get("user_id") not in gone] if gone else events

    def _dead_letter(self, conn: psycopg.Connection[Any], rows: dict[str, list[dict[str, Any]]],
                     exc: BaseException) -> None:
        """Set one refused row aside with its SQLSTATE (or log it when even that fails)."""
        kind, row = next((k, v[0]) for k, v in rows.items() if v and not k.startswith("_"))
        sqlstate = getattr(exc, "sqlstate", None)
        try:
            payload: str | None = json.dumps(
                {k: _jsonable(v) for k, v in row.items() if not k.startswith("_")}, default=str)
        except (TypeError, ValueError):
            payload = None
        params = {"kind": kind, "sqlstate": sqlstate, "error": str(exc)[:2000],
                  "payload": payload}
        try:
            with conn.transaction():
                conn.execute(DEAD_LETTER, params)
        except psycopg.Error as dl_exc:
            if is_transient(dl_exc):
                raise
            params["payload"] = None
            with conn.transaction():
                conn.execute(DEAD_LETTER, params)
        self.counters["dead_lettered"] += 1
        log.error("waymark writer: a %s row was refused (SQLSTATE %s: %s); see waymark.dead_letters",
                  kind, sqlstate, exc)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True, prepare_threshold=None,
                                         connect_timeout=5,
                                         application_name="waymark-writer")
        return self._conn

    def _salt_connection(self) -> psycopg.Connection[Any]:
        if self._salt_conn is None or self._salt_conn.closed:
            self._salt_conn = psycopg.connect(self.url, autocommit=True, prepare_threshold=None,
                                              connect_timeout=5,
                                              application_name="waymark-writer")
        return self._salt_conn

    def _disconnect_salts(self) -> None:
        conn, self._salt_conn = self._salt_conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass


@contextmanager
def _transaction(conn: psycopg.Connection[Any], begin: str) -> Iterator[Any]:
    """A transaction whose BEGIN travels with its first statements; yields their answer.

    Whatever fails — those first statements included — the transaction is rolled back, so
    the connection is never left inside a failed transaction for the next batch.
    """
    try:
        cur = conn.execute(begin)
        while cur.nextset():  # the answer of the last statement
            pass
        row = cur.fetchone() if cur.pgresult is not None and cur.description else None
        yield row[0] if row else None
    except BaseException:
        _rollback(conn)
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _rollback(conn: psycopg.Connection[Any]) -> None:
    if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # the connection is broken; it is dropped and reopened


def _unique(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per event_id (a batch may hold a client's retry of the same event)."""
    unique: dict[Any, dict[str, Any]] = {}
    for row in events:
        if row.get("event_id") is None:
            row["event_id"] = new_id()
        unique.setdefault(row["event_id"], row)
    return list(unique.values()) if len(unique) < len(events) else events


def _after_fork(ref: weakref.ref[EventWriter]) -> None:
    """In a forked child (gunicorn --preload) the parent's thread and socket are not ours."""
    writer = ref()
    if writer is not None:
        writer._conn = writer._salt_conn = None  # never close: the sockets are the parent's
        writer._reset_process_state()
        writer.counters.clear()
        writer.dropped.clear()
