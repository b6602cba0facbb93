"""Error fingerprints and groups: same bug → one group; counts of occurrences and people."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from backend.services.ingest import error_groups

STACK = """TypeError: Cannot read properties of undefined (reading 'id')
    at QuestCard (https://app.example/static/js/main.3f2a9c1b.js?v=2:12:345)
    at renderWithHooks (https://app.example/static/js/vendor.9ab12cd3.js:1:99)
    at mountComponent (https://app.example/static/js/vendor.9ab12cd3.js:2:7)
    at deeper (x.js:1:1)"""


def test_variable_parts_do_not_change_the_fingerprint() -> None:
    a = {"error_type": "javascript_error", "message": "Quest 12 failed for 'ann' at "
         "https://x.example/a?b=1 id 3fa85f64-5717-4562-b3fc-2c963f66afa6", "stack": STACK}
    b = {"error_type": "javascript_error", "message": "Quest 977 failed for 'bob' at "
         "https://y.example/c id 00000000-0000-4000-8000-000000000000",
         "stack": STACK.replace(":12:345", ":80:1").replace("3f2a9c1b", "77aa77aa")}
    assert error_groups.fingerprint(a) == error_groups.fingerprint(b)
    c = dict(a, message="Network request failed")
    assert error_groups.fingerprint(c) != error_groups.fingerprint(a)
    assert error_groups.fingerprint(dict(a, error_type="network_error")) != \
        error_groups.fingerprint(a)


def test_top_frames_drop_line_numbers_queries_and_build_hashes() -> None:
    frames = error_groups.top_frames(STACK)
    assert frames == ["at QuestCard (https://app.example/static/js/main.js)",
                      "at renderWithHooks (https://app.example/static/js/vendor.js)",
                      "at mountComponent (https://app.example/static/js/vendor.js)"]


def test_grouping_reads_a_bounded_head_of_client_text() -> None:
    """What bounds a hostile report's cost (bench.redos): grouping reads only the head of the
    message, of the stack and of each frame, so text past it cannot change the result."""
    head = "https://app.example/" + "x" * error_groups.MESSAGE_HEAD  # normalises to "<url>"
    a = {"error_type": "javascript_error", "message": head + " first tail 1"}
    b = {"error_type": "javascript_error", "message": head + " another tail 2"}
    assert error_groups.fingerprint(a) == error_groups.fingerprint(b)
    noise = "noise line\n" * error_groups.STACK_LINES
    assert error_groups.top_frames(noise + "    at late (x.js:1:1)") == []
    long_frame = "    at f (https://app.example/" + "y" * error_groups.FRAME_HEAD + ")"
    assert len(error_groups.top_frames(long_frame)[0]) <= error_groups.FRAME_HEAD


def test_urls_are_found_by_their_scheme() -> None:
    """The scheme is bounded (20 characters), which still covers the schemes stacks carry."""
    for url in ("https://a.example/x", "chrome-extension://abc/d.js", "webpack-internal:///./x"):
        assert error_groups.normalise_message(f"failed at {url} now") == "failed at <url> now"


def test_api_errors_group_by_endpoint_shape() -> None:
    one = {"error_type": "api_error", "http_method": "POST", "status_code": 500,
           "api_endpoint": "/quests/17/start", "message": "HTTP 500"}
    two = dict(one, api_endpoint="/quests/3fa85f64-5717-4562-b3fc-2c963f66afa6/start")
    other = dict(one, api_endpoint="/badges/17/claim")
    assert error_groups.fingerprint(one) == error_groups.fingerprint(two)
    assert error_groups.fingerprint(one) != error_groups.fingerprint(other)


def _error(user: uuid.UUID | None, visitor: bytes | None, message: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"error_id": uuid.uuid4(), "occurred_at": now, "received_at": now, "user_id": user,
            "visitor_hash": visitor, "error_type": "javascript_error", "message": message,
            "source": "client", "event_data": {}}


def test_groups_count_occurrences_and_distinct_people(conn: psycopg.Connection[Any]) -> None:
    ann, bob = uuid.uuid4(), uuid.uuid4()
    first = [_error(ann, None, "boom 1"), _error(ann, None, "boom 2"), _error(None, b"v", "boom 3")]
    with conn.transaction():
        assert error_groups.write_errors(conn, first) == 3
    second = [_error(ann, None, "boom 4"), _error(bob, None, "boom 5"), first[0]]
    with conn.transaction():
        assert error_groups.write_errors(conn, second) == 2  # first[0] is a retry: ignored
    groups = conn.execute("SELECT occurrences, users_affected, message FROM error_groups"
                          ).fetchall()
    assert groups == [(5, 3, "boom 1")]
    assert conn.execute("SELECT count(*) FROM error_events WHERE group_id IS NOT NULL"
                        ).fetchone() == (5,)
