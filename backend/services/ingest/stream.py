"""The JetStream mode's log: its stream, its wire format, and the app node's publisher.

With ``WAYMARK_QUEUE_URL=nats://…`` app nodes keep no queue of their own. An ingestion
request runs the privacy step and the host's ``before_store`` hook on the app node, then
publishes each row to a JetStream stream and answers 202 once the stream has acknowledged
all of them (docs/ingestion.md "Two modes"). ``waymark writer`` processes
(``stream_writer``) consume the stream into PostgreSQL.

Only rows that went through the privacy step are published: the stream keeps its messages
on disk, and no raw IP address, user agent or bearer token may ever reach it. One message
carries one request's rows; its id (``Nats-Msg-Id``) is made from the rows' own ids, so a
client's retry within the stream's duplicate window is dropped by the stream, and a
redelivery is stored once by the writer's idempotent insert.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from typing import Any

import nats
import psycopg
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api

from backend.config import Settings
from backend.services.ingest import connections
from backend.services.ingest.batch import PreparedBatch, Row
from backend.services.ingest.counters import Heartbeat
from backend.services.ingest.crawlers import CrawlerCheck
from backend.services.ingest.prepare import BeforeStore, screen
from backend.services.ingest.privacy_step import PrivacyStep, Verifier
from backend.services.ingest.receipts import Receipt

log = logging.getLogger("waymark.stream")

#: the durable consumer every ``waymark writer`` process shares (messages are divided)
DURABLE = "waymark-writer"
#: a client's retry inside this window is dropped by the stream itself
DUPLICATE_WINDOW_SECONDS = 120
CONNECT_TIMEOUT = 2.0

#: the columns that travel as text and are typed again on the writer's side
_UUIDS = frozenset({"event_id", "user_id", "session_id", "error_id"})
_TIMES = frozenset({"occurred_at", "received_at"})
_BYTES = frozenset({"visitor_hash", "network_hash"})
_IDS = {"event": "event_id", "error": "error_id", "session": "session_id"}


class BadMessage(ValueError):
    """A message that is not a row this version of Waymark published."""


def subject(settings: Settings) -> str:
    """The stream's one subject (named after the stream, so two deployments can share a
    NATS cluster)."""
    return f"waymark.{settings.stream_name}"


def stream_config(settings: Settings) -> api.StreamConfig:
    """The stream: on disk, bounded in bytes and age, a work queue (a message is deleted
    once a writer acknowledged it), refusing new messages when full (the endpoints answer
    503: nothing accepted is ever pushed out)."""
    return api.StreamConfig(
        name=settings.stream_name, subjects=[subject(settings)],
        retention=api.RetentionPolicy.WORK_QUEUE, storage=api.StorageType.FILE,
        discard=api.DiscardPolicy.NEW, max_bytes=settings.stream_max_bytes,
        max_age=settings.stream_max_age_hours * 3600,
        num_replicas=settings.stream_replicas,
        duplicate_window=DUPLICATE_WINDOW_SECONDS)


async def connect(settings: Settings) -> NATS:
    """A connection to the cluster that reconnects for ever (a lost node is not an outage)."""
    return await nats.connect(servers=list(settings.queue_urls),
                              connect_timeout=CONNECT_TIMEOUT, max_reconnect_attempts=-1,
                              reconnect_time_wait=0.5, name="waymark")


async def ensure_stream(js: JetStreamContext, settings: Settings) -> None:
    """Create the stream, or bring an existing one's bounds to the settings."""
    config = stream_config(settings)
    try:
        await js.stream_info(settings.stream_name)
    except nats.js.errors.NotFoundError:
        with contextlib.suppress(nats.js.errors.BadRequestError):  # another node made it
            await js.add_stream(config)
            return
    await js.update_stream(config)


# ---- the wire format -------------------------------------------------------------------


def encode(rows: list[tuple[str, Row]]) -> tuple[str, bytes]:
    """The privacy-stepped rows of one request as (message id, JSON body).

    One message per request, not per event: a 100-event batch costs the stream one
    acknowledgement, not a hundred. The message id is the row's own id for one row, else a
    digest of every row's id, so a client's resend of the same batch (same event ids) is
    dropped by the stream's duplicate window; the writer's idempotent insert covers the rest.
    """
    ids = [str(row[_IDS[kind]]) for kind, row in rows]
    message_id = ids[0] if len(ids) == 1 else \
        "b-" + hashlib.sha256(",".join(ids).encode()).hexdigest()[:40]
    body = json.dumps({"rows": [{"kind": kind, "row": row} for kind, row in rows]},
                      default=_plain, separators=(",", ":"))
    return message_id, body.encode()


def decode(data: bytes) -> list[tuple[str, Row]]:
    """The (kind, row) pairs of a message, typed again; :class:`BadMessage` for anything else."""
    try:
        return [_typed(entry["kind"], entry["row"]) for entry in json.loads(data)["rows"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise BadMessage(str(exc)) from exc


def _typed(kind: str, row: Row) -> tuple[str, Row]:
    if kind not in _IDS or not isinstance(row, dict):
        raise BadMessage(f"not a Waymark row: kind {kind!r}")
    for key, value in row.items():
        if value is None:
            continue
        if key in _UUIDS:
            row[key] = uuid.UUID(value)
        elif key in _TIMES:
            row[key] = datetime.fromisoformat(value)
        elif key in _BYTES:
            row[key] = bytes.fromhex(value)
    return kind, row


def batch_of(rows: list[tuple[str, Row]]) -> PreparedBatch:
    """Decoded rows as one batch for the store (one row per id: a redelivery may repeat)."""
    batch = PreparedBatch()
    seen: set[tuple[str, Any]] = set()
    by_kind = {"event": batch.events, "error": batch.errors, "session": batch.pings}
    for kind, row in rows:
        key = (kind, row[_IDS[kind]])
        if key not in seen:
            seen.add(key)
            by_kind[kind].append(row)
    return batch


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} cannot travel in a message")


# ---- the app node's side ---------------------------------------------------------------


class StreamPublisher(CrawlerCheck):
    """What ``state.writer`` is in the JetStream mode: the same calls as ``EventWriter``.

    ``submit_all`` runs the privacy step on the request thread (the raw facts never leave
    the process), then hands the messages to an event loop thread that publishes them and
    settles the request's receipt once the stream acknowledged every one — or fails it, and
    the endpoint answers 503.
    """

    def __init__(self, url: str, settings: Settings, *,
                 before_store: BeforeStore | None = None,
                 privacy: PrivacyStep | None = None, verify: Verifier | None = None) -> None:
        self.url = url
        self.settings = settings
        self.subject = subject(settings)
        self.before_store = before_store
        self.privacy = privacy or PrivacyStep(settings, verify)
        self.counters: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.heartbeat = Heartbeat("publisher", self.stats)
        self._lock = threading.Lock()  # the privacy step's caches and its salt connection
        self._start_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._js: JetStreamContext | None = None
        self._nc: NATS | None = None
        self._salt_conn: psycopg.Connection[Any] | None = None
        self._closed = False
        self._beating: asyncio.Task[Any] | None = None
        self._connected = threading.Event()
        self._in_flight = 0
        self._idle = threading.Condition()  # guards _in_flight; notified when it is 0

    # ---- the calls routes, middleware and forget make -------------------------------

    def submit(self, item: Row, receipt: Receipt | None = None) -> bool:
        """Publish one item (see :meth:`submit_all`)."""
        return self.submit_all([item], receipt)

    def submit_all(self, batch: list[Row], receipt: Receipt | None = None) -> bool:
        """Privacy step, then publish; False (counted) when the stream cannot be reached.

        With a ``receipt``, it is settled once the stream acknowledged every message and
        failed if any was refused (stream full, no quorum) or not acknowledged in time.
        """
        if self._closed:
            self.dropped["closed"] += len(batch)
            return False
        try:
            loop = self._started()
            message, kept = self._screen(batch)
        except (OSError, TimeoutError, nats.errors.Error, psycopg.OperationalError) as exc:
            log.warning("waymark: cannot publish now (%s)", exc)
            self.dropped["stream_unavailable"] += len(batch)
            return False
        self.counters["accepted"] += len(batch)
        if receipt is not None and kept < len(batch):
            receipt.settle(len(batch) - kept)  # dropped on purpose: nothing to wait for
        if message is None:
            return True
        with self._idle:
            self._in_flight += kept
        future = asyncio.run_coroutine_threadsafe(self._publish(message), loop)
        future.add_done_callback(lambda done: self._published(done, kept, receipt))
        return True

    def withdraw(self, batch: list[Row]) -> int:
        """Nothing to take back: a message is published or not; the client's retry of one
        that was is dropped by the stream's duplicate window and the idempotent insert."""
        return 0

    def drop_user(self, user_id: uuid.UUID | str) -> int:
        """Nothing is queued here; a forgotten user's messages in the stream are dropped by
        the writers' tombstone check (``waymark.is_forgotten``), as in-process."""
        return 0

    def start(self) -> None:
        """Connect now (``submit`` does it lazily)."""
        self._started()

    def flush(self, timeout: float = 5.0) -> int:
        """Wait for publishes in flight; returns how many are still unacknowledged."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight and time.monotonic() < deadline:
                self._idle.wait(deadline - time.monotonic())
            return self._in_flight

    def close(self, timeout: float = 5.0) -> None:
        """Wait for publishes in flight, then disconnect."""
        self._closed = True
        left = self.flush(timeout)
        if left:
            self.dropped["unwritten_at_exit"] += left
        loop, self._loop = self._loop, None
        if loop is not None:
            with contextlib.suppress(Exception):  # shutting down: report nothing more
                asyncio.run_coroutine_threadsafe(self._disconnect(), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
        conn, self._salt_conn = self._salt_conn, None
        connections.close(conn)

    def stats(self) -> dict[str, Any]:
        """This process's counters (``/health`` sums them over every process)."""
        return {"in_flight": self._in_flight,
                **{k: self.counters.get(k, 0) for k in ("accepted", "published",
                                                         "publish_failed")},
                "invalid_tokens": self.privacy.invalid_tokens,
                "dropped": dict(self.dropped)}

    async def stream_state(self) -> dict[str, Any]:
        """The stream's depth and the writers' lag, as the server tells them."""
        if self._js is None:
            return {"connected": False}
        info = await self._js.stream_info(self.settings.stream_name)
        state: dict[str, Any] = {"connected": True, "messages": info.state.messages,
                                 "bytes": info.state.bytes,
                                 "max_bytes": self.settings.stream_max_bytes}
        try:
            consumer = await self._js.consumer_info(self.settings.stream_name, DURABLE)
        except nats.js.errors.NotFoundError:
            state["writers"] = "none has connected yet"
            return state
        state["consumer_pending"] = consumer.num_pending
        state["consumer_ack_pending"] = consumer.num_ack_pending
        state["redelivered"] = consumer.num_redelivered
        return state

    def stream_state_now(self, timeout: float = 2.0) -> dict[str, Any]:
        """:meth:`stream_state` from a request thread."""
        try:
            loop = self._started()
            return asyncio.run_coroutine_threadsafe(self.stream_state(), loop).result(timeout)
        except (OSError, TimeoutError, concurrent.futures.TimeoutError,
                nats.errors.Error) as exc:
            return {"connected": False, "error": type(exc).__name__}

    # ---- inside -----------------------------------------------------------------------

    def _screen(self, batch: list[Row]) -> tuple[tuple[str, bytes] | None, int]:
        """The one message of ``batch`` after the privacy step and the hook (None when
        every item was dropped on purpose: a crawler, the hook), and how many rows it holds."""
        rows: list[tuple[str, Row]] = []
        with self._lock:
            for item in batch:
                row = screen(self.privacy, self.before_store, self._salt_connection, item,
                             self.dropped)
                if row is not None:
                    rows.append((item.get("kind", "event"), row))
        return (encode(rows) if rows else None), len(rows)

    async def _publish(self, message: tuple[str, bytes]) -> None:
        js = self._js
        if js is None:
            raise nats.errors.ConnectionClosedError
        message_id, body = message
        await js.publish(self.subject, body, timeout=self.settings.ack_timeout,
                         stream=self.settings.stream_name, headers={"Nats-Msg-Id": message_id})

    def _published(self, done: concurrent.futures.Future[None], count: int,
                   receipt: Receipt | None) -> None:
        with self._idle:
            self._in_flight -= count
            if not self._in_flight:
                self._idle.notify_all()
        exc = done.exception()
        if exc is None:
            self.counters["published"] += count
            if receipt is not None:
                receipt.settle(count)
            return
        self.counters["publish_failed"] += count
        log.warning("waymark: the stream did not acknowledge %d events (%s: %s)%s", count,
                    type(exc).__name__, exc, "; answered 503" if receipt else "; lost")
        if receipt is not None:
            receipt.fail()
        else:  # fire and forget (middleware, track()): nobody will retry them
            self.dropped["publish_failed"] += count

    def _started(self) -> asyncio.AbstractEventLoop:
        """The event loop thread, connected; raises when NATS cannot be reached.

        The first call waits up to :data:`CONNECT_TIMEOUT` for the connection; later calls
        never wait (a host's request must not hang on a NATS outage): they fail at once
        while the loop keeps trying to connect in the background.
        """
        first = False
        with self._start_lock:
            if self._loop is None:
                first = True
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="waymark-publisher",
                                 daemon=True).start()
                asyncio.run_coroutine_threadsafe(self._keep_connected(), self._loop)
        if self._js is None and not self._connected.wait(CONNECT_TIMEOUT if first else 0):
            raise TimeoutError("NATS is not reachable")
        return self._loop

    async def _keep_connected(self) -> None:
        """Connect (retrying with backoff until it works), then beat until closed; once
        connected, the client itself reconnects across a lost node."""
        delay = 0.5
        while not self._closed:
            try:
                nc = await connect(self.settings)
                js = nc.jetstream()
                await ensure_stream(js, self.settings)
            except (OSError, TimeoutError, nats.errors.Error) as exc:
                log.warning("waymark: NATS unreachable (%s: %s); retrying in %.1f s",
                            type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._nc, self._js = nc, js
            self._connected.set()
            self._beating = asyncio.current_task()
            await self._beat()
            return

    async def _disconnect(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
        if self._nc is not None:
            await self._nc.close()

    async def _beat(self) -> None:
        """The heartbeat, off the request threads."""
        while not self._closed:
            with contextlib.suppress(psycopg.Error, OSError):
                await asyncio.to_thread(self._beat_now)
            await asyncio.sleep(1.0)

    def _beat_now(self) -> None:
        if self.heartbeat.due():
            with self._lock:
                self.heartbeat.beat(self._salt_connection())

    def _salt_connection(self) -> psycopg.Connection[Any]:
        if self._salt_conn is None or self._salt_conn.closed:
            self._salt_conn = connections.connect(self.url, "waymark-publisher")
        return self._salt_conn
