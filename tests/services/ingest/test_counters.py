"""Health sums the counters of every ingestion process (two writers here, as two gunicorn
workers would have), so two calls to /health no longer disagree."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
from flask import Flask
from ingestion_support import BROWSER, flush, writer_of

from backend import create_app
from backend.services.ingest import counters
from backend.state import get_state


def test_health_sums_every_writer_and_drops_processes_gone_quiet(
        app: Flask, app_config: dict[str, Any], conn: psycopg.Connection[Any], auth: Any) -> None:
    other = create_app(app_config)  # a second worker of the same deployment
    try:
        for application, n in ((app, 3), (other, 4)):
            client = application.test_client()
            for _ in range(n):
                assert client.post("/api/analytics/activity/track", headers=BROWSER,
                                   json={"event_type": "page_view"}).status_code == 202
            flush(application)
        with psycopg.connect(get_state(other).db.url, autocommit=True) as beat_conn:
            for application in (app, other):  # (each beats every 5 s on its own)
                writer_of(application).heartbeat.beat(beat_conn, force=True)
        admin = auth.header(uuid.uuid4(), "admin")
        for application in (app, other):
            body = application.test_client().get("/api/analytics/health",
                                                  headers=admin).get_json()
            assert body["writer"]["written"] == 7, body
            assert body["ingestion"]["processes"] == {"in-process": 2}
        public = other.test_client().get("/api/analytics/health").get_json()
        assert public["writer"]["written"] == 7 and "this_process" not in public["writer"]

        conn.execute("UPDATE waymark.ingest_processes SET updated_at = now() - interval '2 days'")
        assert counters.forget_quiet(conn, timedelta(days=1)) >= 1
        body = app.test_client().get("/api/analytics/health", headers=admin).get_json()
        assert body["writer"]["written"] == 3  # only itself is left
    finally:
        get_state(other).close()
