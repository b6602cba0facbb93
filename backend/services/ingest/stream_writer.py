"""``waymark writer``: the JetStream mode's writer processes (durable pull consumers).

Each process fetches a batch of messages, writes it in one transaction with the same store
as the in-process writer (tombstones, sessions, COPY, idempotent by id), commits, and only
then acknowledges the messages. A writer killed between the commit and the acknowledgement
sees its messages delivered again (to itself or another process) after ``ack_wait``: the
events' ``ON CONFLICT DO NOTHING``, the error reports' known-id filter and the
launch pings' session id (made on the app node; the upsert adds nothing to a known one)
make that redelivery a no-op.

While the database is down the batch is kept and retried with capped backoff, and its
messages are told "in progress" so the stream does not hand them to another writer; the
stream fills meanwhile and, once full, the endpoints answer 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter
from typing import Any

import nats
import psycopg
from nats.aio.msg import Msg
from nats.js import api

from backend.config import Settings
from backend.db import fault_of, is_transient
from backend.services.ingest import stream
from backend.services.ingest.batch import PreparedBatch
from backend.services.ingest.connections import backoff, close, connect
from backend.services.ingest.counters import Heartbeat
from backend.services.ingest.pacing import Contention
from backend.services.ingest.store import Store

log = logging.getLogger("waymark.writer")

#: seconds a delivered message may stay unacknowledged before it is delivered again
ACK_WAIT = 30.0
FETCH_TIMEOUT = 1.0
RECONNECT_DELAY = 1.0


class StreamWriter:
    """One writer process's loop: fetch, store, commit, acknowledge."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self.counters: Counter[str] = Counter()
        self.store = Store(self.counters, Contention(), settings.dead_letter_cap)
        self.heartbeat = Heartbeat("writer", self.stats)
        self._conn: psycopg.Connection[Any] | None = None
        #: messages per fetch: a message holds one request's rows (1 to 100), so a
        #: transaction holds at most batch_size × 10 rows (the in-process writer's batches
        #: grow to batch_size × 8 under a backlog)
        self._fetch_size = max(1, settings.batch_size // 10)

    def stats(self) -> dict[str, Any]:
        """This process's counters (summed by ``/health`` with every other process's)."""
        return {k: self.counters.get(k, 0) for k in (
            "delivered", "written", "duplicates", "redelivered", "retried", "dead_lettered",
            "dead_letters_over_cap", "batches", "errors_written", "sessions_touched",
            "writer_errors", "bad_messages", "conflict_fallbacks", "nats_errors")}

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished first. A lost NATS
        node, a stream or consumer leader being elected, a timeout: the writer reconnects
        and goes on (what it had not acknowledged is delivered again)."""
        while not stop.is_set():
            try:
                await self._consume(stop)
            except (OSError, TimeoutError, nats.errors.Error) as exc:
                self.counters["nats_errors"] += 1
                log.warning("waymark writer: NATS unavailable (%s: %s); reconnecting",
                            type(exc).__name__, exc)
                await asyncio.sleep(RECONNECT_DELAY)

    async def _consume(self, stop: asyncio.Event) -> None:
        nc = await stream.connect(self.settings)
        try:
            js = nc.jetstream()
            await stream.ensure_stream(js, self.settings)
            consumer = await js.pull_subscribe(
                stream.subject(self.settings), durable=stream.DURABLE,
                stream=self.settings.stream_name,
                config=api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ACK_WAIT,
                                          max_deliver=-1,
                                          max_ack_pending=self._fetch_size * 20))
            while not stop.is_set():
                try:
                    messages = await consumer.fetch(self._fetch_size, timeout=FETCH_TIMEOUT)
                except TimeoutError:  # nothing to fetch (nats' TimeoutError is one too)
                    await asyncio.to_thread(self._beat)
                    continue
                await self._write(messages)
                await asyncio.to_thread(self._beat)
        finally:
            # the last acknowledgements out, then close (a drain waits on the pull
            # subscription's pending fetch)
            with contextlib.suppress(nats.errors.Error, TimeoutError, OSError):
                await nc.flush(timeout=2)
            with contextlib.suppress(nats.errors.Error, TimeoutError, OSError):
                await nc.close()
            await asyncio.to_thread(self._disconnect)

    async def _write(self, messages: list[Msg]) -> None:
        """Store the batch (retrying until it is stored), then acknowledge every message."""
        self.counters["delivered"] += len(messages)
        rows = []
        kept: list[Msg] = []
        for message in messages:
            if message.metadata.num_delivered > 1:
                self.counters["redelivered"] += 1
            try:
                rows.extend(stream.decode(message.data))
                kept.append(message)
            except stream.BadMessage as exc:
                # not something Waymark published (the subject is ours alone): a bug or
                # tampering; it can never be stored, so it is taken out of the stream
                self.counters["bad_messages"] += 1
                log.error("waymark writer: message %s is not a Waymark row (%s); dropped",
                          message.metadata.sequence.stream, exc)
                await message.term()
        pending = [stream.batch_of(rows)]
        attempt = 0
        while pending:
            try:
                await asyncio.to_thread(self._store, pending)
            except Exception as exc:
                if is_transient(exc):
                    log.warning("waymark writer: database unavailable (%s)", exc)
                else:
                    self.counters["writer_errors"] += 1
                    log.exception("waymark writer: %s while writing %d messages "
                                  "(attempt %d); the batch is kept and retried",
                                  fault_of(exc), len(messages), attempt + 1)
                await asyncio.to_thread(self._disconnect)
                self.counters["retried"] += 1
                await asyncio.sleep(backoff(attempt))
                attempt += 1
                # still ours: not to be delivered to another writer while we retry
                await asyncio.gather(*(m.in_progress() for m in kept),
                                     return_exceptions=True)
        await asyncio.gather(*(m.ack() for m in kept))

    def _store(self, pending: list[PreparedBatch]) -> None:
        conn = self._connection()
        self.store.write(conn, pending)

    def _beat(self) -> None:
        try:
            self.heartbeat.beat(self._connection())
        except psycopg.Error:
            self._disconnect()  # the counters wait for the next beat

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.url)
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        close(conn)


def run_writer(url: str, settings: Settings, stop_after: float | None = None) -> None:
    """Run one writer until SIGTERM/SIGINT (or ``stop_after`` seconds, for tests)."""
    asyncio.run(_main(url, settings, stop_after))


async def _main(url: str, settings: Settings, stop_after: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if stop_after is not None:
        loop.call_later(stop_after, stop.set)
    started = time.monotonic()
    writer = StreamWriter(url, settings)
    await writer.run(stop)
    log.info("waymark writer: stopped after %.0f s: %s", time.monotonic() - started,
             writer.stats())
