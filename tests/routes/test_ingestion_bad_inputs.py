"""Malformed bodies on every ingestion endpoint: a 4xx JSON error naming the problem, nothing queued."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import TEST_JWT_SECRET, _scratch_database
from flask.testing import FlaskClient
from ingestion_support import BROWSER, writer_of

from backend import create_app


@pytest.fixture(scope="module")
def client(pg_server_url: str, template_db: str) -> Iterator[FlaskClient]:
    """One app for the module: refused bodies never reach the writer or the database."""
    for url in _scratch_database(pg_server_url, template=template_db):
        app = create_app({"TESTING": True, "WAYMARK_DATABASE_URL": url,
                          "WAYMARK_JWT_SECRET": TEST_JWT_SECRET, "WAYMARK_POOL_MAX_SIZE": 2})
        yield app.test_client()
        app.extensions["waymark"].close()

TRACK = "/api/analytics/activity/track"
BATCH = "/api/analytics/activity/batch"


def _now(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def _raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# (name, path, raw body, content type, status, text expected in the error)
CASES: list[tuple[str, str, bytes, str, int, str]] = [
    ("not json", TRACK, b"{event_type: page_view", "application/json", 400, "not valid JSON"),
    ("empty body", TRACK, b"", "application/json", 400, "not valid JSON"),
    ("array body", TRACK, b"[1, 2]", "application/json", 400, "JSON object"),
    ("scalar body", TRACK, b"42", "application/json", 400, "JSON object"),
    ("missing event_type", TRACK, _raw({"page_path": "/"}), "application/json", 400,
     "event_type"),
    ("event_type wrong type", TRACK, _raw({"event_type": 7}), "application/json", 400,
     "event_type"),
    ("event_type bad pattern", TRACK, _raw({"event_type": "Page View!"}), "application/json",
     400, "event_type"),
    ("event_type too long", TRACK, _raw({"event_type": "a" * 65}), "application/json", 400,
     "event_type"),
    ("page_path too long", TRACK, _raw({"event_type": "page_view", "page_path": "/" * 2001}),
     "application/json", 400, "page_path"),
    ("event_data not object", TRACK, _raw({"event_type": "x", "event_data": [1]}),
     "application/json", 400, "event_data"),
    ("event_data too deep", TRACK,
     _raw({"event_type": "x", "event_data": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}),
     "application/json", 400, "event_data"),
    ("event_data too big", TRACK, _raw({"event_type": "x", "event_data": {"k": "v" * 1999,
                                        "l": "v" * 1999, "m": "v" * 1999, "n": "v" * 1999,
                                        "o": "v" * 1999}}),
     "application/json", 400, "event_data"),
    ("NaN", TRACK, b'{"event_type": "x", "duration_ms": NaN}', "application/json", 400,
     "finite"),
    ("Infinity in data", TRACK, b'{"event_type": "x", "event_data": {"v": Infinity}}',
     "application/json", 400, "finite"),
    ("NUL in string", TRACK, _raw({"event_type": "x", "page_title": "a\u0000b"}),
     "application/json", 400, "page_title"),
    ("NUL in data key", TRACK, _raw({"event_type": "x", "event_data": {"a\u0000": 1}}),
     "application/json", 400, "\\u0000"),
    ("lone surrogate", TRACK, b'{"event_type": "x", "referrer": "\\ud800"}',
     "application/json", 400, "surrogate"),
    ("invalid utf-8", TRACK, b'{"event_type": "x", "page_title": "\xff\xfe"}',
     "application/json", 400, "UTF-8"),
    ("far future", TRACK, _raw({"event_type": "x", "occurred_at": _now(timedelta(hours=1))}),
     "application/json", 400, "occurred_at"),
    ("ancient", TRACK, _raw({"event_type": "x", "occurred_at": _now(-timedelta(days=40))}),
     "application/json", 400, "occurred_at"),
    ("garbage timestamp", TRACK, _raw({"event_type": "x", "occurred_at": "yesterday-ish"}),
     "application/json", 400, "occurred_at"),
    ("negative duration", TRACK, _raw({"event_type": "x", "duration_ms": -5}),
     "application/json", 400, "duration_ms"),
    ("huge duration", TRACK, _raw({"event_type": "x", "duration_ms": 10**12}),
     "application/json", 400, "duration_ms"),
    ("bad event_id", TRACK, _raw({"event_type": "x", "event_id": "not-a-uuid"}),
     "application/json", 400, "event_id"),
    ("unknown category", TRACK, _raw({"event_type": "x", "event_category": "secret"}),
     "application/json", 400, "event_category"),
    ("wrong content type", TRACK, _raw({"event_type": "x"}), "application/x-www-form-urlencoded",
     415, "application/json"),
    ("body over 64 KiB", TRACK, _raw({"event_type": "x", "pad": "p" * 70_000}),
     "application/json", 413, "64"),
    ("batch over 100", BATCH, _raw({"events": [{"event_type": "x"}] * 101}),
     "application/json", 413, "at most 100"),
    ("batch events not a list", BATCH, _raw({"events": {"event_type": "x"}}),
     "application/json", 400, "events"),
    ("batch all invalid", BATCH, _raw({"events": [{"event_type": "!"}]}), "application/json",
     400, "events[0]"),
    ("error bad type", "/api/analytics/errors", _raw({"error_type": "oops"}),
     "application/json", 400, "error_type"),
    ("error status out of range", "/api/analytics/errors",
     _raw({"message": "m", "status_code": 99}), "application/json", 400, "status_code"),
    ("measure missing event", "/api/analytics/measure", _raw({"storefront": "x"}),
     "application/json", 400, "event"),
    ("collect consent wrong type", "/api/analytics/collect",
     _raw({"url": "https://x.example/", "consent": "maybe"}),
     "application/json", 400, "consent"),
    ("sessions array", "/api/analytics/sessions", b"[]", "text/plain", 400, "JSON object"),
    # Accepted with 202 before, and stored as meaningless rows:
    ("batch empty", BATCH, _raw({"events": []}), "application/json", 400, "events"),
    ("error report empty", "/api/analytics/errors", _raw({}), "application/json", 400,
     "needs a message"),
    ("error report only context", "/api/analytics/errors", _raw({"page_path": "/q"}),
     "application/json", 400, "needs a message"),
    ("collect without url", "/api/analytics/collect", _raw({"utm_source": "x"}),
     "application/json", 400, "url"),
    ("collect empty", "/api/analytics/collect", _raw({}), "application/json", 400, "url"),
    # 500s before (urllib's ValueError), and a NUL that only appears after decoding:
    ("collect malformed ipv6 host", "/api/analytics/collect",
     _raw({"url": "http://[::1/landing?utm_source=a"}), "application/json", 400,
     "url: not a valid URL"),
    ("collect bracketed non-address", "/api/analytics/collect",
     _raw({"url": "http://[zz]/x"}), "application/json", 400, "url: not a valid URL"),
    ("collect port out of range", "/api/analytics/collect",
     _raw({"url": "https://a.example:99999/x"}), "application/json", 400, "not a valid URL"),
    ("collect NUL in a decoded utm value", "/api/analytics/collect",
     _raw({"url": "https://a.example/?utm_source=a%00b"}), "application/json", 400,
     "utm_source contains %00"),
]


@pytest.mark.parametrize(("name", "path", "body", "content_type", "status", "needle"), CASES,
                         ids=[c[0] for c in CASES])
def test_refused_with_a_named_error(client: FlaskClient, name: str, path: str, body: bytes,
                                    content_type: str, status: int, needle: str) -> None:
    response = client.post(path, data=body, content_type=content_type, headers=BROWSER)
    assert response.status_code == status, response.get_data(as_text=True)
    payload = response.get_json()
    assert isinstance(payload, dict) and needle in payload["error"], payload
    assert writer_of(client.application).stats()["accepted"] == 0


def test_batch_keeps_the_valid_events_and_lists_rejected_indexes(
        client: FlaskClient) -> None:
    """Runs last in this module: it is the one test here that queues events."""
    events = [{"event_type": "page_view"}, {"event_type": "BAD"}, {"event_type": "logout"},
              {"event_type": "x", "page_title": "a\u0000"}]
    response = client.post(BATCH, json={"events": events}, headers=BROWSER)
    assert response.status_code == 202
    body = response.get_json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1, 3]
    assert "events[3]" in body["rejected"][1]["error"]
