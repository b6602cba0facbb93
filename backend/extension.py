"""The ``Waymark`` Flask extension: one object, per-app state in ``app.extensions``.

``Waymark(app)`` (or ``Waymark().init_app(app)`` in an app factory) reads the
settings once, opens the database pool without waiting for it (a host app must
start even when its analytics database is down) and installs the parts.
"""

from __future__ import annotations

import atexit
import logging
import os
import weakref
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flask import Flask, current_app

from backend.config import Settings, with_dev_secret
from backend.db import Database, start_embedded

log = logging.getLogger("waymark")

EXTENSION_KEY = "waymark"


@dataclass
class WaymarkState:
    """What one Flask app's Waymark owns: settings, the pool, and the parts built on them."""

    settings: Settings
    db: Database
    parts: dict[str, Any] = field(default_factory=dict)
    closed: bool = False

    def close(self, timeout: float = 5.0) -> None:
        """Stop the parts (flushing what they hold) and close the pool; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        for name, part in reversed(list(self.parts.items())):
            stop = getattr(part, "close", None)
            if callable(stop):
                try:
                    stop(timeout)
                except Exception:  # noqa: BLE001 - shutdown must go on
                    log.exception("waymark: closing %s failed", name)
        self.db.close()


def get_state(app: Flask | None = None) -> WaymarkState:
    """The Waymark state of ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    try:
        state: WaymarkState = target.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError("Waymark is not installed on this app: call Waymark(app) first") from None
    return state


def resolve_database_url(settings: Settings) -> str:
    """The configured server, or the embedded PostgreSQL when none is configured."""
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.data_dir)


class Waymark:
    """The extension object: ``Waymark(app)`` or ``waymark.init_app(app)``.

    Options: ``url_rules`` (``{"POST /quests/<id>/start": "quest_started"}``),
    ``before_store`` (``row -> row | None``, run on each row before it is kept),
    ``track_requests`` (default True), ``skip_paths`` (paths the middleware ignores).
    """

    #: the states of the apps initialised in this process, so ``track()`` works anywhere.
    _live: ClassVar[list[weakref.ref[WaymarkState]]] = []

    @classmethod
    def states(cls) -> list[WaymarkState]:
        """The open Waymark states of this process (``track()`` outside an app context)."""
        cls._live[:] = [ref for ref in cls._live if ref() is not None]
        return [state for ref in cls._live if (state := ref()) is not None and not state.closed]

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        self.options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read settings, open the pool and install routes (and the parts of later issues)."""
        settings = with_dev_secret(Settings.load(app.config, os.environ))
        db = Database(resolve_database_url(settings), min_size=settings.pool_min_size,
                      max_size=settings.pool_max_size)
        db.open(wait=False)
        state = WaymarkState(settings=settings, db=db)
        app.extensions[EXTENSION_KEY] = state

        from backend import auth, routes

        routes.register_api(app)
        auth.install(app, db)  # JSON 401/403 answers; warns when connected as a superuser
        from backend.tracking import install_ingestion

        install_ingestion(app, state, **self.options)  # writer, middleware, SIGTERM flush
        Waymark._live.append(weakref.ref(state))
        _close_at_exit(state)


def _close_at_exit(state: WaymarkState) -> None:
    ref = weakref.ref(state)

    def close() -> None:
        alive = ref()
        if alive is not None:
            alive.close()

    atexit.register(close)
