"""Queue items: the small dicts a request thread hands to the writer.

An item is ``{"kind", "received_at", "row", "client", "user_id", "network", "hash_refs"}``:
``row`` holds the storable columns, ``client`` the raw facts (ip, ua, origin, token) that only
the privacy step may read and that are dropped there, ``user_id`` a user the server itself
vouches for (``track(user_id=…)``), never one from a request body.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import datetime
from typing import Any

from backend.services.ingest.copy_payload import EVENT_COLUMNS
from backend.services.ingest.validation import (
    Collect,
    ErrorReport,
    Measure,
    SessionPing,
    TrackEvent,
)
from backend.taxonomy import category_of

Client = dict[str, str | None]

#: every column of a row, None until set: the privacy step and the writer then only
#: overwrite keys. (A dict that grows past its size is rebuilt; a row built with ~16 keys
#: was rebuilt once or twice per event in the writer, ~2 µs each.)
_BLANK_ROW: dict[str, Any] = dict.fromkeys(EVENT_COLUMNS)

_MILLIS_MASK = (1 << 48) - 1
_RAND_B_MASK = (1 << 62) - 1


def new_id() -> uuid.UUID:
    """A time-ordered (version 7, RFC 9562) UUID, so new ids append to the primary key.

    48 bits of Unix milliseconds, then 74 random bits. Ids made one after another land on
    the right edge of the ``event_id`` (and ``session_id``, ``error_id``) B-tree, whose
    pages then fill to ~90 %; random version 4 ids split pages all over the index and leave
    them ~70 % full (bench/README.md, bytes per event). The millisecond is also in the
    row's ``received_at``, so the id reveals nothing new. No system call per id (``uuid4``
    reads urandom): ``random``'s shared generator is seeded from os.urandom and re-seeded
    in every forked child, so two processes never draw the same ids; ids need uniqueness,
    not secrecy.
    """
    rand = random.getrandbits(74)
    millis = time.time_ns() // 1_000_000 & _MILLIS_MASK
    return uuid.UUID(int=millis << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62
                     | rand & _RAND_B_MASK)


def client(ip: str | None, ua: str | None, origin: str | None, token: str | None) -> Client:
    """The raw client facts of a request, for the privacy step only."""
    return {"ip": ip, "ua": ua, "origin": origin, "token": token}


#: What a queued item holds in memory besides its text: the item, row and client dicts and
#: their ~30 values (measured with tracemalloc: ~2 KiB for a page view).
ITEM_OVERHEAD_BYTES = 2048
#: A JSON value or key of ``event_data`` as Python objects (an 8 KiB body of tiny objects
#: held ~142 KiB: ~100 bytes per value), beyond the characters it carries.
JSON_NODE_BYTES = 100


def estimated_bytes(item: dict[str, Any]) -> int:
    """Roughly how much memory ``item`` holds while queued (the queue's byte bound)."""
    total = ITEM_OVERHEAD_BYTES
    for value in item["row"].values():
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, dict | list):
            total += _json_bytes(value)
    return total


def _json_bytes(value: Any) -> int:
    if isinstance(value, dict):
        return sum(JSON_NODE_BYTES + len(k) + _json_bytes(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(JSON_NODE_BYTES + _json_bytes(v) for v in value)
    return len(value) if isinstance(value, str) else 0


def _item(kind: str, row: dict[str, Any], received_at: datetime, client_info: Client | None,
          user_id: uuid.UUID | None = None, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "row": row, "received_at": received_at, "client": client_info,
            "user_id": user_id, **extra}


def event_row(event_type: str, received_at: datetime, *, source: str = "client",
              occurred_at: datetime | None = None, event_id: uuid.UUID | None = None,
              event_data: dict[str, Any] | None = None, **columns: Any) -> dict[str, Any]:
    """A ``user_activity_events`` row with its defaults filled (category from the taxonomy).

    Every column is a key (None when unset), so later steps never grow the dict.
    """
    row = _BLANK_ROW.copy()
    row.update(columns, event_id=event_id or new_id(), occurred_at=occurred_at or received_at,
               received_at=received_at, event_type=event_type,
               event_category=category_of(event_type), source=source,
               event_data=event_data or {})
    return row


def track_item(event: TrackEvent, received_at: datetime, client_info: Client | None,
               user_id: uuid.UUID | None = None, source: str = "client") -> dict[str, Any]:
    """An item for a validated ``/activity/track`` event."""
    row = event_row(
        event.event_type, received_at, source=source, occurred_at=event.occurred_at,
        event_id=event.event_id, event_data=event.event_data, page_path=event.page_path,
        page_title=event.page_title, referrer=event.referrer, utm_source=event.utm_source,
        utm_medium=event.utm_medium, utm_campaign=event.utm_campaign,
        duration_ms=event.duration_ms, load_time_ms=event.load_time_ms)
    return _item("event", row, received_at, client_info, user_id)


def error_item(report: ErrorReport, received_at: datetime, client_info: Client | None,
               user_id: uuid.UUID | None = None, source: str = "client") -> dict[str, Any]:
    """An item for an error report (``/errors`` or the middleware's ``api_error``)."""
    row = {
        "error_id": report.event_id or new_id(),
        "occurred_at": report.occurred_at or received_at,
        "received_at": received_at,
        "error_type": report.error_type,
        "message": report.message,
        "stack": report.stack,
        "component_name": report.component_name,
        "page_path": report.page_path,
        "api_endpoint": report.api_endpoint,
        "http_method": report.http_method,
        "status_code": report.status_code,
        "source": source,
        "event_data": report.event_data,
    }
    return _item("error", row, received_at, client_info, user_id)


def session_item(ping: SessionPing, received_at: datetime, client_info: Client) -> dict[str, Any]:
    """An item for an app-launch ping."""
    row = {"session_id": new_id(),  # its id from the start: a redelivery finds it stored
           "occurred_at": ping.occurred_at or received_at, "page_path": ping.page_path,
           "referrer": ping.referrer, "utm_source": ping.utm_source,
           "utm_medium": ping.utm_medium, "utm_campaign": ping.utm_campaign, "source": "client"}
    return _item("session", row, received_at, client_info)


def storable(text: str) -> str:
    """Text a server-side row may keep: PostgreSQL refuses NUL in text and jsonb, and a
    host request's path and arguments are decoded client text (``%00``). The middleware
    cannot refuse a host request, so it keeps U+FFFD in place of the NUL instead."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def storable_data(value: Any) -> Any:
    """:func:`storable` through the strings, keys included, of nested dicts and lists."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable_data(k): storable_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable_data(v) for v in value]
    return value


def collect_item(visit: Collect, received_at: datetime, client_info: Client) -> dict[str, Any]:
    """A landing visit: the URL's path and UTM parameters only (its query may hold PII).

    Without consent (``consent: false``) no network hash is kept, so the visit cannot be
    linked to a later conversion.
    """
    path, utm = visit.landing_path, visit.landing_utm  # decoded and checked by validation
    row = event_row(
        "landing_visit", received_at, event_id=visit.event_id,
        event_data={"consent": visit.consent} if visit.consent is not None else {},
        page_path=path,
        referrer=visit.referrer,
        utm_source=visit.utm_source or utm.get("utm_source"),
        utm_medium=visit.utm_medium or utm.get("utm_medium"),
        utm_campaign=visit.utm_campaign or utm.get("utm_campaign"))
    return _item("event", row, received_at, client_info, network=visit.consent is not False)


def measure_item(conversion: Measure, received_at: datetime, client_info: Client) -> dict[str, Any]:
    """A conversion; the body's ``user_id`` becomes ``event_data.user_ref``, a keyed hash."""
    data: dict[str, Any] = {"conversion": conversion.event}
    if conversion.storefront:
        data["storefront"] = conversion.storefront
    row = event_row("conversion", received_at, event_id=conversion.event_id, event_data=data)
    refs = {"user_ref": conversion.user_id} if conversion.user_id else None
    return _item("event", row, received_at, client_info, network=True, hash_refs=refs)
