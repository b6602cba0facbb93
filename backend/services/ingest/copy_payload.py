"""Events as one finished binary ``COPY`` payload, built before the database thread needs it.

The writer's database thread shares the GIL with the thread that prepares the next batch
(and, in a host app, with its request threads). Formatting rows one ``write_row`` at a
time there cost ~4 µs of Python per event while the server waited; instead the preparing
thread turns a batch into the bytes of a whole binary COPY (signature, rows, trailer) and
the database thread sends them with one ``copy.write``, waiting on the server with the GIL
released. The bytes are psycopg's own: its binary formatter and dumpers, so the server
sees exactly what ``write_row`` would have sent. No tuple per event outlives its row's
formatting either, which keeps the garbage collector's work (a full collection walks the
whole process heap) out of the writer's hot loop.
"""

from __future__ import annotations

import json
import operator
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg
from psycopg import abc, adapt, pq
from psycopg.adapt import PyFormat

try:  # psycopg's row formatter (C in psycopg-binary); private, so used only when present
    from psycopg._copy_base import BinaryFormatter
    _Formatter: type[BinaryFormatter] | None = BinaryFormatter
except ImportError:  # pragma: no cover - a psycopg that moved it: the public path below
    _Formatter = None
#: whether psycopg's C row formatter is in use (else the slower public path)
FAST_FORMATTER = _Formatter is not None

EVENT_COLUMNS = ("event_id", "occurred_at", "received_at", "user_id", "visitor_hash",
                 "network_hash", "session_id", "event_type", "event_category", "page_path",
                 "page_title", "referrer", "utm_source", "utm_medium", "utm_campaign",
                 "duration_ms", "load_time_ms", "status_code", "source", "event_data",
                 "browser", "os", "device_type")
EVENT_TYPES_SQL = ("uuid", "timestamptz", "timestamptz", "uuid", "bytea", "bytea", "uuid", "text",
                   "text", "text", "text", "text", "text", "text", "text", "int4", "int4", "int2",
                   "text", "jsonb", "text", "text", "text")
#: event_data goes as jsonb's binary form (a version byte, then the JSON text, made here by
#: a C encoder): binary COPY sends a field's bytes as they are, so its dumper is bytea's,
#: and the server's jsonb input still parses and checks it.
COPY_TYPES_SQL = tuple("bytea" if c == "event_data" else t
                       for c, t in zip(EVENT_COLUMNS, EVENT_TYPES_SQL, strict=True))
_JSON_AT = EVENT_COLUMNS.index("event_data")
_pick = operator.itemgetter(*EVENT_COLUMNS)
_SIGNATURE = b"PGCOPY\n\xff\r\n\0" + struct.pack("!ii", 0, 0)
_TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_int2 = struct.Struct("!h").pack
_int4 = struct.Struct("!i").pack


#: what psycopg's dumpers (and str.encode) raise for a value they cannot send as its
#: column's type: a dict where bytes go (TypeError), a str where a uuid goes
#: (AttributeError), a lone surrogate (UnicodeEncodeError), an int out of range.
ENCODING_ERRORS = (TypeError, ValueError, AttributeError, OverflowError, psycopg.DataError)


class UnencodableRow(ValueError):
    """A row with a value psycopg cannot encode as its column's type: the row's data is bad.

    Raised only when one column's value alone fails to encode (``column`` names it), so a
    failure of the encoding itself (our bug) is never mistaken for a client's bad row. The
    store dead-letters such a row with SQLSTATE NULL: it never reached the server.
    """

    def __init__(self, column: str, cause: BaseException) -> None:
        super().__init__(f"{column}: {type(cause).__name__}: {cause}")
        self.column = column


def unencodable(values: Sequence[Any], types: Sequence[str], columns: Sequence[str],
                exc: BaseException) -> UnencodableRow | None:
    """Why a row failed to encode with ``exc``: :class:`UnencodableRow` naming the first
    column whose value alone cannot be dumped as its type; None when every value can (then
    the failure is not the data's)."""
    for value, type_name, column in zip(values, types, columns, strict=True):
        if value is None:
            continue
        tx = adapt.Transformer(_ADAPTERS)
        tx.set_dumper_types([_ADAPTERS.types.get_oid(type_name)], pq.Format.BINARY)
        try:
            tx.dump_sequence([value], [PyFormat.BINARY])
        except ENCODING_ERRORS as cause:
            return UnencodableRow(column, cause)
    return None


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json_encoder() -> Callable[[Any], str]:
    """``json.dumps`` (same text), without building its C encoder again for every call."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return json.dumps
    encode = make(None, _not_json, json.encoder.encode_basestring_ascii, None, ": ", ", ",
                  False, False, True)

    def text(value: Any) -> str:
        if isinstance(value, str):
            return json.dumps(value)
        return "".join(encode(value, 0))

    return text


json_text = _json_encoder()


def _adapters() -> adapt.AdaptersMap:
    """The global adapters (as the writer's connections use), with bytes' own dumper for bytea.

    By oid, bytea's binary dumper is the one registered last for it: psycopg's
    ``dbapi20.Binary`` wrapper's, in Python; bytes' dumper is psycopg's C one and sends the
    same bytes (the visitor and network hashes, and event_data's jsonb form).
    """
    adapters = adapt.AdaptersMap(psycopg.adapters)
    adapters.register_dumper(bytes, adapters.get_dumper(bytes, PyFormat.BINARY))
    return adapters


_ADAPTERS = _adapters()


def _transformer() -> abc.Transformer:
    """Dumpers for the COPY's column types."""
    tx = adapt.Transformer(_ADAPTERS)
    oids = [_ADAPTERS.types.get_oid(name) for name in COPY_TYPES_SQL]
    tx.set_dumper_types(oids, pq.Format.BINARY)
    return tx


def _values(row: dict[str, Any]) -> list[Any]:
    """A row's values in COPY order, event_data already jsonb's binary form.

    Data that is not JSON is left as it is: dumping it then fails (:class:`UnencodableRow`),
    and the store sets that row alone aside (dead letters).
    """
    try:
        values = list(_pick(row))  # rows made by ``items.event_row`` have every column
    except KeyError:
        values = list(map(row.get, EVENT_COLUMNS))
    data = values[_JSON_AT]
    if data is not None:
        try:
            values[_JSON_AT] = b"\x01" + json_text(data).encode()
        except (TypeError, ValueError, RecursionError):
            pass
    return values


def encode(rows: Iterable[dict[str, Any]], pause: Callable[[], None] | None = None,
           every: int = 1 << 30) -> bytes:
    """The whole binary COPY of ``rows`` (``EVENT_COLUMNS``), for ``copy.write``.

    ``pause`` is called every ``every`` rows (the writer lets other threads have the GIL).
    A row psycopg cannot dump raises :class:`UnencodableRow` (any other failure is raised
    as it is: a bug, not bad data).
    """
    tx = _transformer()
    if _Formatter is None:  # pragma: no cover - exercised by test_public_path_same_bytes
        return encode_public(rows, tx, pause, every)
    formatter = _Formatter(tx)
    chunks = []
    write_row = formatter.write_row
    for index, row in enumerate(rows):
        if pause is not None and not index % every:
            pause()
        values = _values(row)
        try:
            chunk = write_row(values)
        except ENCODING_ERRORS as exc:
            bad = unencodable(values, COPY_TYPES_SQL, EVENT_COLUMNS, exc)
            if bad is None:
                raise
            raise bad from exc
        if chunk:
            chunks.append(chunk)
    chunks.append(formatter.end())  # the rows still buffered, and the trailer
    return b"".join(chunks)


def encode_public(rows: Iterable[dict[str, Any]], tx: abc.Transformer | None = None,
                  pause: Callable[[], None] | None = None, every: int = 1 << 30) -> bytes:
    """The same bytes through psycopg's public ``Transformer.dump_sequence`` (slower)."""
    tx = tx or _transformer()
    formats = [PyFormat.BINARY] * len(EVENT_COLUMNS)
    count = _int2(len(EVENT_COLUMNS))
    out = bytearray(_SIGNATURE)
    for index, row in enumerate(rows):
        if pause is not None and not index % every:
            pause()
        out += count
        values = _values(row)
        try:
            fields = tx.dump_sequence(values, formats)
        except ENCODING_ERRORS as exc:
            bad = unencodable(values, COPY_TYPES_SQL, EVENT_COLUMNS, exc)
            if bad is None:
                raise
            raise bad from exc
        for field in fields:
            if field is None:
                out += _NULL
            else:
                out += _int4(len(field))
                out += field
    out += _TRAILER
    return bytes(out)
