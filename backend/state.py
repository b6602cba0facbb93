"""What one Flask app's Waymark owns, typed: settings, the pool, risk parameters, the writer.

The composition root (``backend.extension``) builds a :class:`WaymarkState` and keeps it in
``app.extensions["waymark"]``; routes, the middleware and the tracking API read it through
:func:`get_state`. Nothing here builds a part: it only holds them, so every layer above the
services may depend on it without a cycle (docs/architecture.md).
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from typing import ClassVar

import psycopg
from flask import Flask, current_app

from backend.config import Settings
from backend.db import Database, DatabaseUnavailable
from backend.migrations import SchemaTarget
from backend.request_body import BodyWatchdog
from backend.services.analytics.risk import RiskParams
from backend.services.ingest.stream import StreamPublisher
from backend.services.ingest.writer import EventWriter

log = logging.getLogger("waymark")

EXTENSION_KEY = "waymark"


@dataclass(eq=False)
class WaymarkState:
    """One app's Waymark: built once by ``Waymark.init_app``, closed at exit."""

    settings: Settings
    db: Database
    risk_params: RiskParams
    #: the in-process writer, or in the JetStream mode the publisher (the same calls)
    writer: EventWriter | StreamPublisher
    #: the pool analytics reads use: a streaming replica (WAYMARK_READ_DATABASE_URL), or
    #: None to read from the primary. Writes, jobs and forget always use ``db``.
    replica: Database | None = None
    #: cuts ingestion bodies that arrive too slowly (WAYMARK_BODY_READ_TIMEOUT)
    body_watchdog: BodyWatchdog = field(default_factory=BodyWatchdog)
    #: the migrations this version expects, read from its files once
    schema: SchemaTarget = field(default_factory=SchemaTarget.from_files)
    closed: bool = False

    #: the open states of this process, so ``track()`` works outside an app context.
    _live: ClassVar[list[weakref.ref[WaymarkState]]] = []

    @property
    def reads(self) -> Database:
        """Where analytics read as the caller: the replica when one is configured."""
        return self.replica if self.replica is not None else self.db

    def migrations_pending(self, timeout: float = 2.0) -> list[str] | None:
        """The migrations the primary database lacks (empty: up to date), or None when it
        cannot be asked. Asked again each time: a deploy may migrate while the app runs."""
        try:
            with self.db.connection(timeout=timeout) as conn:
                return self.schema.missing(conn)
        except (DatabaseUnavailable, psycopg.Error):
            return None

    def register(self) -> None:
        """Make this state findable by ``track()`` outside an app context."""
        WaymarkState._live.append(weakref.ref(self))

    @classmethod
    def live(cls) -> list[WaymarkState]:
        """The open states of this process (``track()`` and the SIGTERM flush use them)."""
        cls._live[:] = [ref for ref in cls._live if ref() is not None]
        return [state for ref in cls._live if (state := ref()) is not None and not state.closed]

    def close(self, timeout: float = 5.0) -> None:
        """Stop the writer (flushing what it holds) and close the pool; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self.body_watchdog.close()
        try:
            self.writer.close(timeout)
        except Exception:
            log.exception("waymark: closing the writer failed")  # shutdown must go on
        if self.replica is not None:
            self.replica.close()
        self.db.close()


def get_state(app: Flask | None = None) -> WaymarkState:
    """The Waymark state of ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    try:
        state: WaymarkState = target.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError("Waymark is not installed on this app: call Waymark(app) first") from None
    return state


def has_state(app: Flask) -> bool:
    """Whether ``app`` has Waymark installed."""
    return EXTENSION_KEY in app.extensions
