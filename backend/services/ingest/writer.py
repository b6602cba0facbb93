"""The background event writer: a bounded queue drained by two daemon threads into PostgreSQL.

Request threads only call :meth:`EventWriter.submit` (a ``put_nowait``). The first thread,
started lazily and re-created after ``fork``, takes batches by size or time and prepares them
(``prepare``: privacy step, session segments and their open sessions, the whole binary COPY
payload); the second writes each prepared batch in one transaction (``store``).

Two kinds of callers. The ingestion endpoints queue with a :class:`~.receipts.Receipt` and
wait for it: the writer settles it once the batch holding those events has committed, and
does not wait out its flush interval while someone is waiting (group commit: requests that
arrive while a batch is being written share the next transaction). So 202 means stored,
and a crash after it loses nothing (docs/ingestion.md). The middleware, ``track()`` and
``request_event()`` queue without a receipt and never wait (fire-and-forget: what they
queued is written unless the process dies before :meth:`flush` could finish).

Failures: a row PostgreSQL refuses as data is the store's to handle (split, dead letter; see
``store.is_data_error``). Anything else that fails a stage keeps the batch in memory and
retries it with capped, jittered backoff: a transient failure (``backend.db.is_transient``)
quietly, any other exception — a bug in our code — logged with its traceback and counted as
``writer_errors``. Meanwhile the queue fills and the endpoints answer 503; nothing is
dead-lettered for our bug. At :meth:`close`, what still cannot be written is counted as
``unwritten_at_exit``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar, cast

import psycopg

from backend.config import Settings
from backend.db import fault_of, is_transient
from backend.services.ingest.batch import PreparedBatch, Row
from backend.services.ingest.bounded_queue import BoundedQueue, Empty
from backend.services.ingest.connections import backoff, close, connect
from backend.services.ingest.copy_payload import EVENT_COLUMNS, EVENT_TYPES_SQL
from backend.services.ingest.counters import Heartbeat
from backend.services.ingest.crawlers import CrawlerCheck
from backend.services.ingest.items import estimated_bytes
from backend.services.ingest.pacing import Contention
from backend.services.ingest.prepare import BatchPreparer, BeforeStore
from backend.services.ingest.privacy_step import PrivacyStep, Verifier
from backend.services.ingest.receipts import Claims, Receipt, fail_all, settle_all
from backend.services.ingest.store import Store

log = logging.getLogger("waymark.writer")

__all__ = ["EVENT_COLUMNS", "EVENT_TYPES_SQL", "BeforeStore", "EventWriter"]

IDLE_POLL = 0.1
#: with a backlog of at least one batch, a batch may grow to this many times batch_size.
BACKLOG_FACTOR = 8
HURRY_POLL = 0.05  # how soon a waiting batch notices flush()
#: an urgent batch goes when at most this many batches are ahead of it in the database stage:
#: 0 — while one transaction runs, the next one gathers every request that arrives (with 16
#: clients 3.8 events a transaction instead of 1.8, and 1,220 instead of 910 events/s:
#: bench/README.md "Durable acknowledgement")
GROUP_AHEAD = 0

#: a prepared batch on its way to the database stage: (number, queue items, its batches,
#: the receipts of its items and how many items each)
Job = tuple[int, int, list[PreparedBatch], Counter[Receipt]]

T = TypeVar("T")


class EventWriter(CrawlerCheck):
    """Owns the queue and the threads of one process (see the module docstring)."""

    _items: BoundedQueue[Row]

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
        self.heartbeat = Heartbeat("in-process", self.stats)
        self._reset_process_state()
        os.register_at_fork(after_in_child=partial(_call_if_alive,
                                                   weakref.WeakMethod(self._after_fork)))

    def _reset_process_state(self) -> None:
        """Fresh queue, threads, parts and connections: at start, and in a forked child."""
        self._items = BoundedQueue[Row](self.settings.queue_size,
                                        max_cost=self.settings.queue_bytes,
                                        cost=estimated_bytes)
        self._thread: threading.Thread | None = None
        self._db_thread: threading.Thread | None = None
        #: prepared batches waiting for the database stage (at most two: memory stays bounded)
        self._handoff: BoundedQueue[Job | None] = BoundedQueue(2)
        self._prepared_seq = 0
        contention = Contention()
        self._preparer = BatchPreparer(self.settings, self.privacy, self.before_store,
                                       contention)
        self._store = Store(self.counters, contention, self.settings.dead_letter_cap)
        self._conn: psycopg.Connection[Any] | None = None
        self._salt_conn: psycopg.Connection[Any] | None = None
        self._stop = threading.Event()
        self._hurry = threading.Event()
        #: wakes the gathering thread (a waiter, or flush)
        self._wake = threading.Event()
        self._claims = Claims()
        self._give_up_at: float | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.privacy.salts.forget()

    # ---- the request-thread side -------------------------------------------------------

    def submit(self, item: Row, receipt: Receipt | None = None) -> bool:
        """Queue one item without blocking; False (and counted) when full or closed.
        With a ``receipt``, the writer settles it once the item is committed."""
        return self.submit_all([item], receipt)

    def submit_all(self, batch: list[Row], receipt: Receipt | None = None) -> bool:
        """Queue every item of a batch, or none (False, counted) when they do not all fit:
        a client told 503 resends the whole batch, one told 202 can forget it."""
        if self._thread is None and self.autostart:
            self._start()
        if self._closed:
            self.dropped["closed"] += len(batch)
            return False
        if receipt is not None:
            self._claims.add(batch, receipt)
        if not self._items.put_all(batch):
            self._claims.take(batch)
            self.dropped["queue_full"] += len(batch)
            return False
        self.counters["accepted"] += len(batch)
        if receipt is not None:
            self._wake.set()  # its batch goes as soon as the gathering thread sees it
        return True

    def withdraw(self, batch: list[Row]) -> int:
        """Take back items still queued (a request that stopped waiting answers 503, so its
        client resends them); returns how many were still queued. Items already taken by
        the writer may still be written: an ``event_id`` makes the client's retry a no-op."""
        ids = {id(item) for item in batch}
        removed = self._items.remove_where(lambda item: id(item) in ids)
        self._claims.take(batch)
        self.counters["withdrawn"] += removed
        return removed

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
        self._wake.set()
        try:
            return self._items.wait_until_empty(
                timeout, lambda: self._thread is not None and self._thread.is_alive())
        finally:
            self._hurry.clear()

    def close(self, timeout: float = 5.0) -> None:
        """Refuse new items, flush within ``timeout``, stop the threads and disconnect."""
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

    def drop_user(self, user_id: uuid.UUID | str) -> int:
        """Remove still-queued items that name ``user_id`` (forget runs this before deleting)."""
        target = str(user_id).lower()
        # Whose items they are is worked out on a snapshot, outside the queue's lock: it may
        # verify tokens, and request threads must never wait on that to enqueue.
        theirs = {id(item) for item in self._items.snapshot()
                  if str(self._user_of(item) or "").lower() == target}
        hits: list[Row] = []

        def names_user(item: Row) -> bool:
            if id(item) not in theirs:
                return False
            hits.append(item)
            return True

        removed = self._items.remove_where(names_user) if theirs else 0
        settle_all(self._claims.take(hits))  # dropped on purpose: nothing to store
        self.dropped["forgotten"] += removed
        return removed

    def _user_of(self, item: Row) -> uuid.UUID | str | None:
        """Whose item this is: the user the server vouched for, else its token's (an HTTP
        item's user is only known from its token, which the privacy step checks later)."""
        user = item.get("user_id")
        if user is not None:
            return cast("uuid.UUID | str", user)
        token = (item.get("client") or {}).get("token")
        return self.privacy.tokens.user_for(token) if token else None

    def stats(self) -> dict[str, Any]:
        """Counters for ``/health``: accepted, written, retried, writer_errors, dropped by
        reason, queue depth."""
        return {
            "queue_depth": self._items.qsize(),
            "queue_size": self._items.maxsize,
            "queue_bytes": self._items.total_cost,
            "queue_bytes_max": self._items.max_cost,
            "running": bool(self._thread and self._thread.is_alive()),
            **{k: self.counters.get(k, 0) for k in (
                "accepted", "written", "duplicates", "retried", "dead_lettered",
                "dead_letters_over_cap", "batches",
                "errors_written", "sessions_touched", "skipped_by_hook", "conflict_fallbacks",
                "writer_errors", "withdrawn")},
            "invalid_tokens": self.privacy.invalid_tokens,
            "dropped": dict(self.dropped),
        }

    # ---- the two stages -------------------------------------------------------------

    def _run(self) -> None:
        """Stage 1 (the named thread): gather batches and prepare them."""
        while True:
            items = self._collect()
            if items is None:
                self._handoff.put(None)
                return
            self._prepared_seq += 1
            seq = self._prepared_seq
            receipts = self._claims.take(items)
            prepared = self._retrying(
                "preparing", len(items),
                partial(self._preparer.prepare, self._salt_connection, items, seq,
                        waited=bool(receipts)),
                self._disconnect_salts)
            if prepared is None:  # given up at exit
                fail_all(receipts)
                self._finished(seq, len(items))
                continue
            self.dropped.update(prepared.dropped)
            self.counters["skipped_by_hook"] += prepared.skipped_by_hook
            # waits while 2 behind
            self._handoff.put((seq, len(items), [prepared.batch], receipts))
            self._beat()

    def _run_db(self) -> None:
        """Stage 2: write prepared batches, in order, while stage 1 prepares the next one."""
        while True:
            job = self._handoff.get()
            if job is None:
                return
            seq, count, pending, receipts = job
            written = False
            try:
                written = bool(self._retrying("writing", count, partial(self._write, pending),
                                              self._disconnect))
            finally:
                (settle_all if written else fail_all)(receipts)
                self._finished(seq, count)
                self._wake.set()  # a gathering batch that waits for its turn goes now

    def _write(self, pending: list[PreparedBatch]) -> bool:
        self._store.write(self._connection(), pending)
        return True

    def _finished(self, seq: int, count: int) -> None:
        self._preparer.finished(seq)
        self._items.done(count)

    def _collect(self) -> list[Row] | None:
        """Block for the first item, then gather up to ``batch_size`` or until the interval
        (or until someone waits for a commit: the batch then goes at once)."""
        while True:
            try:
                first = self._items.get(timeout=IDLE_POLL)
                break
            except Empty:
                if self._stop.is_set():
                    return None
                self.privacy.expire_salts(datetime.now(UTC))
                self._beat()
        batch = [first]
        # Someone waits for one of these items: send the batch now. Known from the items
        # themselves (receipts are registered before queueing), so no signal can be missed.
        urgent = self._claims.any_of(batch)
        deadline = time.monotonic() + self.settings.flush_interval
        size = self.settings.batch_size
        if self._items.qsize() >= size:  # a backlog: fewer, larger transactions catch up faster
            size *= self.backlog_factor
        while len(batch) < size:
            more = self._items.take(size - len(batch))
            if more:
                batch.extend(more)
                urgent = urgent or self._claims.any_of(more)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (urgent and self._ahead() <= GROUP_AHEAD) \
                    or self._hurry.is_set() or self._stop.is_set():
                # urgent: someone waits for a commit. Group commit: the batch goes as soon
                # as the database stage is free; until then it takes in every request that
                # arrives, so one transaction answers them all
                break
            # then take what arrived meanwhile at once: waking for every item would take
            # the GIL from a busy host's requests once per item
            self._wake.wait(min(remaining, HURRY_POLL))
            self._wake.clear()
        return batch

    def _ahead(self) -> int:
        """Batches taken and not yet finished by the database stage (each counter has one
        writing thread: the gathering thread numbers batches, the database stage finishes)."""
        return self._prepared_seq - self._preparer.done_seq

    def _retrying(self, stage: str, count: int, action: Callable[[], T],
                  reset: Callable[[], None]) -> T | None:
        """Run ``action`` until it succeeds, keeping its batch and retrying with capped backoff.

        A transient failure is logged as a warning; any other exception reaching here is a
        bug in our code (the store handles data errors itself): logged with its traceback,
        counted as ``writer_errors``. Either way the stage's connection is dropped (its
        state is unknown). Returns None when giving up at exit (``close`` has counted the
        ``count`` items as unwritten).
        """
        attempt = 0
        while True:
            try:
                return action()
            except Exception as exc:
                if is_transient(exc):
                    log.warning("waymark writer: database unavailable while %s %d events "
                                "(%s)", stage, count, _first_line(exc))
                else:
                    self.counters["writer_errors"] += 1
                    log.exception("waymark writer: %s while %s %d events (attempt %d); "
                                  "the batch is kept and retried", fault_of(exc), stage, count,
                                  attempt + 1)
                reset()
            if self._give_up_at is not None and time.monotonic() >= self._give_up_at:
                log.error("waymark writer: giving up %s %d events at exit", stage, count)
                return None
            self.counters["retried"] += 1
            time.sleep(backoff(attempt))
            attempt += 1

    def _beat(self) -> None:
        """This process's counters for ``/health``'s sum (on the preparing thread's
        connection, every few seconds; a failure waits for the next beat)."""
        if not self.heartbeat.due():
            return
        try:
            self.heartbeat.beat(self._salt_connection())
        except (psycopg.Error, OSError):
            self._disconnect_salts()

    # ---- connections (one per stage) ------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.url)
        return self._conn

    def _salt_connection(self) -> psycopg.Connection[Any]:
        if self._salt_conn is None or self._salt_conn.closed:
            self._salt_conn = connect(self.url)
        return self._salt_conn

    def _disconnect_salts(self) -> None:
        conn, self._salt_conn = self._salt_conn, None
        close(conn)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        close(conn)

    def _after_fork(self) -> None:
        """In a forked child (gunicorn --preload) the parent's threads and sockets are not
        ours: start afresh, without closing the parent's connections."""
        self._conn = self._salt_conn = None
        self._reset_process_state()
        self.counters.clear()
        self.dropped.clear()
        self.heartbeat = Heartbeat("in-process", self.stats)  # this process's own row



def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _call_if_alive(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    """Call a weakly held method unless its object is gone (a fork hook must not keep a
    writer alive)."""
    bound = method()
    if bound is not None:
        bound()
