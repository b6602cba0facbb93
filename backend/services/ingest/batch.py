"""A prepared batch: what the preparing thread hands the database thread.

The rows have been through the privacy step and the ``before_store`` hook; what could be
worked out off the database thread is carried along (session segments, their open sessions,
the whole COPY payload), each optional: the store works out whatever is missing inside its
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backend.services.ingest.session_segments import Segment

Row = dict[str, Any]


@dataclass(eq=False)
class PreparedBatch:
    """The rows of one batch by kind, and what was prepared for them."""

    #: ``user_activity_events`` rows, one per event_id
    events: list[Row] = field(default_factory=list)
    #: error reports (``error_events``)
    errors: list[Row] = field(default_factory=list)
    #: app-launch pings (``/sessions``): one new session each
    pings: list[Row] = field(default_factory=list)
    #: ``segments_of(events)``, made beforehand (None: the store makes them)
    segments: list[Segment] | None = None
    #: ``segments_json(segments)`` once their open sessions were found and every event
    #: holds its session_id (None: the store finds them in its transaction)
    joined: str | None = None
    #: the events' whole binary COPY (``copy_payload.encode``; None: the store encodes)
    payload: bytes | None = None

    def __len__(self) -> int:
        return len(self.events) + len(self.errors) + len(self.pings)

    def kinds(self) -> list[tuple[str, Row]]:
        """Every row with its kind (``event``, ``error``, ``session``), in that order."""
        return ([("event", row) for row in self.events] + [("error", row) for row in self.errors]
                + [("session", row) for row in self.pings])

    def halves(self) -> tuple[PreparedBatch, PreparedBatch]:
        """The rows split in two, with nothing prepared (a data error is being looked for)."""
        rows = self.kinds()
        half = len(rows) // 2
        first, second = PreparedBatch(), PreparedBatch()
        for index, (kind, row) in enumerate(rows):
            if "session_id" in row:
                row["session_id"] = None  # given again in the half's own transaction
            part = first if index < half else second
            {"event": part.events, "error": part.errors, "session": part.pings}[kind].append(row)
        return first, second
