"""The writer's queue is bounded by estimated bytes as well as by count."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from backend.services.ingest import items
from backend.services.ingest.bounded_queue import BoundedQueue


def item(event_data: dict[str, Any]) -> dict[str, Any]:
    row = items.event_row("page_view", datetime.now(UTC), event_data=event_data)
    return {"kind": "event", "row": row, "received_at": datetime.now(UTC), "client": None,
            "user_id": None}


def tiny_objects() -> dict[str, Any]:
    """The red-team body: ~8 KB of JSON made of many tiny objects (~142 KiB as Python)."""
    data = {"l": [{"a": 1} for _ in range(1000)]}
    assert len(json.dumps(data, separators=(",", ":"))) <= 8 * 1024
    return data


def test_many_tiny_objects_cost_far_more_than_their_json() -> None:
    plain, heavy = items.estimated_bytes(item({})), items.estimated_bytes(item(tiny_objects()))
    assert plain < 3000
    assert heavy > 150_000  # the estimate follows the objects, not the 8 KB of text


def test_put_all_refuses_what_would_pass_the_byte_bound_and_take_frees_it() -> None:
    q: BoundedQueue[dict[str, Any]] = BoundedQueue(1000, max_cost=500_000,
                                                   cost=items.estimated_bytes)
    heavy = [item(tiny_objects()) for _ in range(3)]
    assert q.put_all(heavy[:2])
    assert not q.put_all(heavy[2:])  # the count would fit, the bytes do not
    assert q.put_all([item({}) for _ in range(10)])  # small ones still fit
    assert len(q.take(2)) == 2
    assert q.put_all(heavy[2:])  # taken items no longer count
    removed = q.remove_where(lambda i: bool(i["row"]["event_data"]))
    assert removed == 1 and q.total_cost == 10 * items.estimated_bytes(item({}))
    q.get(timeout=1)
    assert q.total_cost == 9 * items.estimated_bytes(item({}))


def test_without_a_byte_bound_only_the_count_applies() -> None:
    q: BoundedQueue[int] = BoundedQueue(2)
    assert q.put_all([1, 2]) and not q.put_all([3])
