"""The background event writer: a bounded queue drained by one daemon thread into PostgreSQL.

Request threads only call :meth:`EventWriter.submit` (a ``put_nowait``). The thread, started
lazily and re-created after ``fork``, takes batches by size or time, runs the privacy step,
and writes each batch in one transaction: ``LOCK_SHARED`` (the forget contract), sessions,
``COPY`` into a temporary staging table, then ``INSERT … SELECT … ON CONFLICT (event_id) DO
NOTHING`` filtered by ``NOT_FORGOTTEN``. Transient failures keep the batch in memory and retry
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
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

from backend.config import Settings
from backend.db import is_transient
from backend.services import error_groups, sessions
from backend.services.privacy_step import PrivacyStep
from backend.services.tombstones import LOCK_SHARED, NOT_FORGOTTEN

log = logging.getLogger("waymark.writer")

BeforeStore = Callable[[dict[str, Any]], dict[str, Any] | None]

EVENT_COLUMNS = ("event_id", "occurred_at", "received_at", "user_id", "visitor_hash",
                 "network_hash", "session_id", "event_type", "event_category", "page_path",
                 "page_title", "referrer", "utm_source", "utm_medium", "utm_campaign",
                 "duration_ms", "load_time_ms", "status_code", "source", "event_data",
                 "browser", "os", "device_type")
EVENT_TYPES_SQL = ("uuid", "timestamptz", "timestamptz", "uuid", "bytea", "bytea", "uuid", "text",
                   "text", "text", "text", "text", "text", "text", "text", "int4", "int4", "int2",
                   "text", "jsonb", "text", "text", "text")
_COLS = ", ".join(EVENT_COLUMNS)

PREPARE = f"""{LOCK_SHARED};
CREATE TEMP TABLE IF NOT EXISTS wm_stage_events
    (LIKE public.user_activity_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"""
COPY_EVENTS = f"COPY wm_stage_events ({_COLS}) FROM STDIN (FORMAT BINARY)"  # noqa: S608
INSERT_EVENTS = f"""
INSERT INTO public.user_activity_events ({_COLS})
SELECT {_COLS} FROM wm_stage_events s WHERE {NOT_FORGOTTEN}
ON CONFLICT (event_id) DO NOTHING
"""  # noqa: S608 - constants only
KNOWN_EVENT_IDS = "SELECT event_id FROM public.user_activity_events WHERE event_id = ANY(%s)"
FORGOTTEN_USERS = f"""
SELECT s.user_id FROM unnest(%s::uuid[]) AS s(user_id) WHERE NOT {NOT_FORGOTTEN}
"""  # noqa: S608
DEAD_LETTER = """
INSERT INTO waymark.dead_letters (kind, sqlstate, error, payload)
VALUES (%(kind)s, %(sqlstate)s, %(error)s, %(payload)s::jsonb)
"""

BACKOFF_FIRST = 0.05
BACKOFF_CAP = 2.0
IDLE_POLL = 0.1
HURRY_POLL = 0.05  # how soon a waiting batch notices flush()


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, uuid.UUID | datetime):
        return str(value)
    return value


class EventWriter:
    """Owns the queue and the writer thread of one process (see the module docstring)."""

    def __init__(self, url: str, settings: Settings, *, before_store: BeforeStore | None = None,
                 privacy: PrivacyStep | None = None, name: str = "waymark-writer") -> None:
        self.url = url
        self.settings = settings
        self.before_store = before_store
        self.privacy = privacy or PrivacyStep(settings)
        self.name = name
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
        self._conn: psycopg.Connection[Any] | None = None
        self._stop = threading.Event()
        self._hurry = threading.Event()
        self._give_up_at: float | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.privacy.salts.forget()

    # ---- the request-thread side -------------------------------------------------------

    def submit(self, item: dict[str, Any]) -> bool:
        """Queue one item without blocking; False (and counted) when full or closed."""
        if self._thread is None:
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

    def has_room(self, count: int) -> bool:
        """Whether ``count`` more items fit now (a batch endpoint checks before queuing)."""
        return self._queue.maxsize - self._queue.qsize() >= count

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
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
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        self._disconnect()

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
                "errors_written", "sessions_touched", "skipped_by_hook")},
            "invalid_tokens": self.privacy.invalid_tokens,
            "dropped": dict(self.dropped),
        }

    # ---- the writer thread --------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            try:
                self._process(batch)
            except Exception:  # noqa: BLE001 - the thread must survive anything
                log.exception("waymark writer: a batch of %d failed unexpectedly", len(batch))
                self.dropped["internal_error"] += len(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _collect(self) -> list[dict[str, Any]] | None:
        """Block for the first item, then gather up to ``batch_size`` or until the interval."""
        while True:
            try:
                first = self._queue.get(timeout=IDLE_POLL)
                break
            except queue.Empty:
                if self._stop.is_set():
                    return None
        batch = [first]
        deadline = time.monotonic() + self.settings.flush_interval
        size = self.settings.batch_size
        while len(batch) < size:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0 or self._hurry.is_set() or self._stop.is_set():
                    batch.append(self._queue.get_nowait())
                else:
                    batch.append(self._queue.get(timeout=min(remaining, HURRY_POLL)))
            except queue.Empty:
                if remaining <= HURRY_POLL or self._hurry.is_set() or self._stop.is_set():
                    break
        return batch

    def _process(self, batch: list[dict[str, Any]]) -> None:
        """Prepare once, then write with retries while the failures are transient."""
        prepared: dict[str, list[dict[str, Any]]] | None = None
        attempt = 0
        while True:
            try:
                conn = self._connection()
                if prepared is None:
                    prepared = self._prepare(conn, batch)
                self._write_split(conn, prepared)
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._disconnect()
                if self._give_up_at is not None and time.monotonic() >= self._give_up_at:
                    log.error("waymark writer: giving up on %d events at exit: %s", len(batch), exc)
                    self.dropped["unwritten_at_exit"] += len(batch)
                    return
                self.counters["retried"] += 1
                delay = min(BACKOFF_CAP, BACKOFF_FIRST * (2 ** attempt))
                attempt += 1
                log.warning("waymark writer: database unavailable (%s); retry in %.2fs",
                            str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__,
                            delay)
                time.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter only

    def _prepare(self, conn: psycopg.Connection[Any],
                 batch: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Run the privacy step and the ``before_store`` hook; split rows by kind."""
        out: dict[str, list[dict[str, Any]]] = {"event": [], "error": [], "session": []}
        skipped: Counter[str] = Counter()
        for item in batch:
            result = self.privacy.apply(conn, item)
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
        return out

    def _write_split(self, conn: psycopg.Connection[Any],
                     rows: dict[str, list[dict[str, Any]]]) -> None:
        """Write a batch; on a data error write each half, down to the single bad row."""
        try:
            self._write(conn, rows)
            return
        except Exception as exc:
            if is_transient(exc):
                raise
            total = sum(len(v) for v in rows.values())
            if total <= 1:
                self._dead_letter(conn, rows, exc)
                return
            log.warning("waymark writer: %s in a batch of %d; splitting it", exc, total)
        first: dict[str, list[dict[str, Any]]] = {}
        second: dict[str, list[dict[str, Any]]] = {}
        flat = [(kind, row) for kind, kind_rows in rows.items() for row in kind_rows]
        half = len(flat) // 2
        for index, (kind, row) in enumerate(flat):
            row.pop("session_id", None)
            (first if index < half else second).setdefault(kind, []).append(row)
        self._write_split(conn, first)
        self._write_split(conn, second)

    def _write(self, conn: psycopg.Connection[Any], rows: dict[str, list[dict[str, Any]]]) -> None:
        """One transaction: lock, known/forgotten filters, sessions, events, errors."""
        events = rows.get("event", [])
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(PREPARE)
            events = self._fresh(cur, events)
            touched = sessions.record_sessions(conn, events, rows.get("session", []))
            written = 0
            if events:
                with cur.copy(COPY_EVENTS) as copy:
                    copy.set_types(list(EVENT_TYPES_SQL))
                    for row in events:
                        copy.write_row(tuple(row.get(name) for name in EVENT_COLUMNS))
                cur.execute(INSERT_EVENTS)
                written = cur.rowcount
            errors = error_groups.write_errors(conn, rows.get("error", []))
        self.counters["written"] += written
        self.counters["duplicates"] += len(rows.get("event", [])) - written
        self.counters["errors_written"] += errors
        self.counters["sessions_touched"] += touched
        self.counters["batches"] += 1

    def _fresh(self, cur: psycopg.Cursor[Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Drop rows already stored (a retried client) or of forgotten users, before sessions."""
        if not events:
            return events
        unique: dict[Any, dict[str, Any]] = {}
        for row in events:
            row.setdefault("event_id", uuid.uuid4())
            unique.setdefault(row["event_id"], row)
        cur.execute(KNOWN_EVENT_IDS, (list(unique),))
        for (event_id,) in cur.fetchall():
            unique.pop(event_id, None)
        users = {row["user_id"] for row in unique.values() if row.get("user_id") is not None}
        if users:
            cur.execute(FORGOTTEN_USERS, (list(users),))
            gone = {user_id for (user_id,) in cur.fetchall()}
            if gone:
                return [r for r in unique.values() if r.get("user_id") not in gone]
        return list(unique.values())

    def _dead_letter(self, conn: psycopg.Connection[Any], rows: dict[str, list[dict[str, Any]]],
                     exc: BaseException) -> None:
        """Set one refused row aside with its SQLSTATE (or log it when even that fails)."""
        kind, row = next((k, v[0]) for k, v in rows.items() if v)
        sqlstate = getattr(exc, "sqlstate", None)
        try:
            payload: str | None = json.dumps({k: _jsonable(v) for k, v in row.items()},
                                             default=str)
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

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass


def now_utc() -> datetime:
    """The time of receipt stamped on queued items (freezegun-friendly)."""
    return datetime.now(UTC)


def _after_fork(ref: weakref.ref[EventWriter]) -> None:
    """In a forked child (gunicorn --preload) the parent's thread and socket are not ours."""
    writer = ref()
    if writer is not None:
        writer._conn = None  # never close: the socket still belongs to the parent
        writer._reset_process_state()
        writer.counters.clear()
        writer.dropped.clear()


def flush_on_sigterm() -> None:
    """On SIGTERM, flush every Waymark state before the process ends (when nobody else,
    e.g. gunicorn, handles SIGTERM already; gunicorn's graceful exit runs ``atexit``)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        from backend.extension import Waymark

        for state in Waymark.states():
            state.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
