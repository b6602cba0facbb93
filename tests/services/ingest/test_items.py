"""Server-generated ids: version 7 (time-ordered), unique, and client ids kept as sent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from freezegun import freeze_time

from backend.services.ingest.items import event_row, new_id


def test_new_id_is_an_rfc_9562_version_7_uuid_carrying_the_millisecond() -> None:
    with freeze_time("2026-11-22 07:30:00.123456"):
        made = new_id()
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    expected_ms = int(datetime(2026, 11, 22, 7, 30, 0, 123000, tzinfo=UTC).timestamp() * 1000)
    assert made.int >> 80 == expected_ms


def test_ids_made_later_sort_after_earlier_ones() -> None:
    with freeze_time("2026-11-22 07:30:00") as frozen:
        first = [new_id() for _ in range(50)]
        frozen.tick(0.002)
        later = [new_id() for _ in range(50)]
    assert max(first) < min(later)
    assert max(map(str, first)) < min(map(str, later))  # also as text, as PostgreSQL sorts uuid


def test_ids_within_one_millisecond_are_unique() -> None:
    with freeze_time("2026-11-22 07:30:00"):
        made = {new_id() for _ in range(20_000)}
    assert len(made) == 20_000


def test_a_client_id_is_stored_as_sent_and_a_missing_one_is_generated() -> None:
    received = datetime(2026, 11, 22, 7, 30, tzinfo=UTC)
    client_id = uuid.uuid4()
    assert event_row("page_view", received, event_id=client_id)["event_id"] == client_id
    assert event_row("page_view", received)["event_id"].version == 7
