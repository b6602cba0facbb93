"""The composition root: the ``Waymark`` Flask extension builds and wires every part.

``Waymark(app)`` (or ``Waymark().init_app(app)`` in an app factory) reads the settings
once, opens the database pool without waiting for it (a host app must start even when its
analytics database is down), builds the writer with the token verifier it needs, installs
the middleware and the API, and arranges the flush at exit. Only this module knows how
the parts fit together; each part knows only the layers below it (docs/architecture.md).
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import weakref
from collections.abc import Iterable, Mapping
from types import FrameType

from flask import Flask

from backend import auth, routes
from backend.config import Settings, with_dev_secret
from backend.db import Database, resolve_database_url
from backend.middleware.activity_tracker import DEFAULT_SKIP_PATHS, ActivityTracker
from backend.private_logs import FlaskExceptionLine
from backend.services.analytics import risk
from backend.services.ingest.stream import StreamPublisher
from backend.services.ingest.writer import BeforeStore, EventWriter
from backend.state import EXTENSION_KEY, WaymarkState


class Waymark:
    """The extension object: ``Waymark(app)`` or ``waymark.init_app(app)``.

    Options: ``url_rules`` (``{"POST /quests/<id>/start": "quest_started"}``),
    ``before_store`` (``row -> row | None``, run on each row before it is kept),
    ``track_requests`` (default True), ``skip_paths`` (paths the middleware ignores).
    """

    def __init__(self, app: Flask | None = None, *,
                 url_rules: Mapping[str, str] | None = None,
                 before_store: BeforeStore | None = None, track_requests: bool = True,
                 skip_paths: Iterable[str] | None = None) -> None:
        self.url_rules = url_rules
        self.before_store = before_store
        self.track_requests = track_requests
        self.skip_paths = skip_paths
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read settings, open the pool, build the writer, install middleware and routes."""
        settings = with_dev_secret(Settings.load(app.config, os.environ))
        risk_params = risk.params_from_settings(settings)
        db = Database(resolve_database_url(settings), min_size=settings.pool_min_size,
                      max_size=settings.pool_max_size)
        db.open(wait=False)
        writer: EventWriter | StreamPublisher
        if settings.queue_urls:  # the JetStream mode (docs/ingestion.md "Two modes")
            writer = StreamPublisher(db.url, settings, before_store=self.before_store,
                                     verify=auth.token_verifier(settings))
        else:
            writer = EventWriter(db.url, settings, before_store=self.before_store,
                                 verify=auth.token_verifier(settings))
        replica = None
        if settings.read_database_url:
            replica = Database(settings.read_database_url, min_size=settings.pool_min_size,
                               max_size=settings.pool_max_size, name="waymark-replica")
            replica.open(wait=False)
        state = WaymarkState(settings=settings, db=db, risk_params=risk_params, writer=writer,
                             replica=replica)
        app.extensions[EXTENSION_KEY] = state

        routes.register_api(app)
        auth.install(app, state)  # JSON 401/403 answers; warns when connected as a superuser
        app.logger.addFilter(FlaskExceptionLine())  # no decoded path or user id in its line
        if self.track_requests:
            ActivityTracker(state, self.url_rules,
                            self.skip_paths or DEFAULT_SKIP_PATHS).install(app)
        state.register()
        _close_at_exit(state)
        _flush_on_sigterm()


def _close_at_exit(state: WaymarkState) -> None:
    ref = weakref.ref(state)

    def close() -> None:
        alive = ref()
        if alive is not None:
            alive.close()

    atexit.register(close)


def _flush_on_sigterm() -> None:
    """On SIGTERM, flush every Waymark state before the process ends (when nobody else,
    e.g. gunicorn, handles SIGTERM already; gunicorn's graceful exit runs ``atexit``)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        for state in WaymarkState.live():
            state.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)


__all__ = ["Waymark"]
