"""The preparing step: queued items into a :class:`PreparedBatch`, off the database thread.

For each item the privacy step and the ``before_store`` hook; then, for the whole batch, its
session segments, their open sessions (one query, while the previous batch is still being
written) and the events' whole binary COPY payload. Preparing has no side effect outside
this object but the privacy step's caches, so a batch whose preparation failed is prepared
again from the same items.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

import psycopg

from backend.config import Settings
from backend.services.ingest import copy_payload
from backend.services.ingest import session_segments as sessions
from backend.services.ingest.batch import PreparedBatch, Row
from backend.services.ingest.copy_payload import UnencodableRow
from backend.services.ingest.items import new_id
from backend.services.ingest.pacing import Contention, Pacer
from backend.services.ingest.privacy_step import PrivacyStep
from backend.services.ingest.store import PACE_EVERY, is_data_error

log = logging.getLogger("waymark.writer")

BeforeStore = Callable[[Row], Row | None]

#: a batch of DEEP_BACKLOG × batch_size or more: the writer is behind (see ``pacing``)
DEEP_BACKLOG = 4


class Prepared(NamedTuple):
    """A prepared batch and what preparing it left out (counted once it succeeded)."""

    batch: PreparedBatch
    #: items not stored, by reason (``crawler:*``, ``before_store_error``)
    dropped: Counter[str]
    #: items the ``before_store`` hook returned None for
    skipped_by_hook: int


class BatchPreparer:
    """Prepares the batches of one writer, numbered in order (``seq``) as they are taken.

    The open sessions of batch N+1 are looked up before batch N is committed, so the
    preparer remembers the sessions of the batches in flight (``in_flight``) until the
    database stage reports them done (:meth:`finished`).
    """

    def __init__(self, settings: Settings, privacy: PrivacyStep,
                 before_store: BeforeStore | None, contention: Contention) -> None:
        self.settings = settings
        self.privacy = privacy
        self.before_store = before_store
        self.contention = contention
        self.in_flight = sessions.InFlight()
        #: the last batch holding app-launch pings (sessions the next batches must see)
        self.ping_seq = 0
        #: the last batch the database stage finished
        self.done_seq = 0

    def finished(self, seq: int) -> None:
        """Batch ``seq`` is committed (or given up): the database now shows what it holds."""
        self.done_seq = seq

    def prepare(self, connect: Callable[[], psycopg.Connection[Any]], items: list[Row],
                seq: int = 0, *, waited: bool = False) -> Prepared:
        """Run the privacy step and the ``before_store`` hook; split rows by kind; find the
        events' sessions and encode their COPY (while the previous batch is written).

        ``connect`` gives the connection for salts and open sessions (opened only when
        needed). ``seq`` 0: a batch outside the numbering (its sessions are found in its
        own transaction). ``waited``: a request waits for this batch's commit (durable
        acknowledgement), so the writer offers the GIL but never rests (``pacing``): a rest
        would only make that request, the host's own, wait longer.
        """
        batch = PreparedBatch()
        by_kind = {"event": batch.events, "error": batch.errors, "session": batch.pings}
        dropped: Counter[str] = Counter()
        pause = Pacer(self.contention,
                      backlog=len(items) >= DEEP_BACKLOG * self.settings.batch_size,
                      rests=not waited)
        for index, item in enumerate(items):
            if not index % PACE_EVERY:
                pause()
            result = screen(self.privacy, self.before_store, connect, item, dropped)
            if result is None:
                continue
            by_kind[item.get("kind", "event")].append(result)
        batch.events = _unique(batch.events)
        pause()
        self._sessions(connect, batch, seq, pause)
        hooked_out = dropped.pop(SKIPPED_BY_HOOK, 0)
        return Prepared(batch, dropped, hooked_out)

    def _sessions(self, connect: Callable[[], psycopg.Connection[Any]], batch: PreparedBatch,
                  seq: int, pause: Pacer) -> None:
        """Segments, their open sessions and the COPY payload, where they can be known now."""
        segments = batch.segments = sessions.segments_of(batch.events)
        pause()
        if batch.pings:
            self.ping_seq = seq
        elif seq and segments and self.ping_seq <= self.done_seq:
            # the database shows every batch up to ``done``; the in-flight map the rest
            done = self.done_seq
            try:
                sessions.join_open_sessions(connect(), segments, self.in_flight)
            except psycopg.Error as exc:
                if not is_data_error(exc):
                    raise
                log.warning("waymark writer: finding open sessions failed (%s); the batch's "
                            "transaction will", exc)
                return
            self.in_flight.forget_until(done)
            self.in_flight.remember(seq, segments)
            for segment in segments:
                session_id = segment.session_id
                for row in segment.rows:
                    row["session_id"] = session_id
            pause()
            batch.joined = sessions.segments_json(segments)
        if batch.events and (batch.joined is not None or not segments and not batch.pings):
            # every session id is known (or there is none): the whole COPY, ready for the
            # database thread to send as it is
            try:
                batch.payload = copy_payload.encode(batch.events, pause, PACE_EVERY)
            except UnencodableRow as exc:
                log.debug("waymark writer: a row cannot be encoded (%s); the database "
                          "thread will set it aside", exc)


#: the key under which :func:`screen` counts rows the host's hook returned None for
SKIPPED_BY_HOOK = "skipped_by_hook"


def screen(privacy: PrivacyStep, before_store: BeforeStore | None,
           connect: Callable[[], psycopg.Connection[Any]], item: Row,
           dropped: Counter[str]) -> Row | None:
    """The privacy step, then the host's ``before_store`` hook: the row to store, or None
    with the reason counted in ``dropped`` (a crawler, the hook raised, the hook said no).

    In-process the writer's preparing thread runs it; in the JetStream mode the app node,
    before anything is published.
    """
    result = privacy.apply(connect, item)
    if isinstance(result, str):
        dropped[f"crawler:{result}"] += 1
        return None
    if before_store is None:
        return result
    try:
        hooked = before_store(result)
    except Exception:
        log.exception("waymark: before_store raised; the event is dropped")
        dropped["before_store_error"] += 1
        return None
    if hooked is None:
        dropped[SKIPPED_BY_HOOK] += 1
    return hooked


def _unique(events: list[Row]) -> list[Row]:
    """One row per event_id (a batch may hold a client's retry of the same event)."""
    unique: dict[Any, Row] = {}
    for row in events:
        if row.get("event_id") is None:
            row["event_id"] = new_id()
        unique.setdefault(row["event_id"], row)
    return list(unique.values()) if len(unique) < len(events) else events
