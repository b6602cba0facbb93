"""The shape of every ingestion body: typed, bounded pydantic v2 models and a strict JSON parse.

Everything a client sends is checked here, on the request thread, before it may reach the
writer: body size, UTF-8, JSON without NaN/Infinity, field types and bounds, and strings
PostgreSQL cannot store (``\\u0000``, lone surrogates) are refused with a message that names
the field. Fields nobody asked for (``user_id``, ``role`` …) are ignored: the user of an event
comes only from a verified token.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from backend.clock import MAX_FUTURE, MAX_PAST
from backend.db import unstorable
from backend.taxonomy import CATEGORIES, ERROR_TYPES

MAX_BODY_BYTES = 64 * 1024
MAX_EVENT_DATA_BYTES = 8 * 1024
MAX_EVENT_DATA_DEPTH = 5
MAX_STRING = 2000
MAX_BATCH = 100
MAX_DURATION_MS = 7 * 24 * 3600 * 1000  # a week: longer is a client clock bug
MAX_LOAD_TIME_MS = 10 * 60 * 1000

EventType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Text = Annotated[str, StringConstraints(max_length=MAX_STRING)]
ShortText = Annotated[str, StringConstraints(max_length=200)]
DurationMs = Annotated[int, Field(ge=0, le=MAX_DURATION_MS, strict=False)]
LoadTimeMs = Annotated[int, Field(ge=0, le=MAX_LOAD_TIME_MS, strict=False)]


class InvalidInput(ValueError):
    """A body Waymark refuses; ``str()`` is the client-facing message naming the field."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _refuse_constant(name: str) -> Any:
    raise InvalidInput(f"body: {name} is not valid JSON (numbers must be finite)")


def parse_json(raw: bytes) -> Any:
    """Decode a body as strict UTF-8 JSON (no NaN/Infinity), or raise InvalidInput."""
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput(f"body: larger than 64 KiB ({MAX_BODY_BYTES} bytes)", status=413)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("body: not valid UTF-8") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except InvalidInput:
        raise
    except (ValueError, RecursionError):
        raise InvalidInput("body: not valid JSON") from None


def check_storable(value: Any, where: str, depth: int = 0) -> None:
    """Refuse strings PostgreSQL cannot store (NUL, lone surrogates), recursing into data."""
    if isinstance(value, str):
        problem = unstorable(value)
        if problem is not None:
            raise InvalidInput(f"{where}: {problem}")
    elif isinstance(value, dict):
        if depth > MAX_EVENT_DATA_DEPTH + 2:
            raise InvalidInput(f"{where}: nested too deeply")
        for key, item in value.items():
            check_storable(key, f"{where} (a key)", depth + 1)
            check_storable(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        if depth > MAX_EVENT_DATA_DEPTH + 2:
            raise InvalidInput(f"{where}: nested too deeply")
        for index, item in enumerate(value):
            check_storable(item, f"{where}[{index}]", depth + 1)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _check_event_data(value: dict[str, Any]) -> dict[str, Any]:
    if _depth(value) > MAX_EVENT_DATA_DEPTH:
        raise ValueError(f"nested deeper than {MAX_EVENT_DATA_DEPTH} levels")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8", "surrogatepass"))
    if size > MAX_EVENT_DATA_BYTES:
        raise ValueError(f"larger than {MAX_EVENT_DATA_BYTES} bytes as JSON")
    return value


def _check_time(value: datetime | None, info: ValidationInfo) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    now = (info.context or {}).get("now") or datetime.now(UTC)
    if value < now - MAX_PAST:
        raise ValueError("more than 31 days in the past")
    if value > now + MAX_FUTURE:
        raise ValueError("more than 5 minutes in the future")
    return value


def _without_query(value: str | None) -> str | None:
    """A page path or referrer without its query string and fragment: that is where e-mail
    addresses, tokens and search terms travel, and what the rollups would copy for years.
    (UTM parameters have their own columns; /collect reads them before this.)"""
    if value is None:
        return None
    return value.split("#", 1)[0].split("?", 1)[0]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False, allow_inf_nan=False,
                              frozen=True)


class TrackEvent(_Body):
    """One event of ``/activity/track`` (and each element of ``/activity/batch``)."""

    event_type: EventType
    event_category: Literal[CATEGORIES] | None = None  # type: ignore[valid-type]
    event_id: uuid.UUID | None = None
    occurred_at: datetime | None = None
    page_path: Text | None = None
    page_title: Text | None = None
    referrer: Text | None = None
    utm_source: ShortText | None = None
    utm_medium: ShortText | None = None
    utm_campaign: ShortText | None = None
    duration_ms: DurationMs | None = None
    load_time_ms: LoadTimeMs | None = None
    event_data: dict[str, Any] = Field(default_factory=dict)

    _time = field_validator("occurred_at")(_check_time)
    _data = field_validator("event_data")(_check_event_data)
    _paths = field_validator("page_path", "referrer")(_without_query)


class Batch(_Body):
    """The envelope of ``/activity/batch``: the events are validated one by one."""

    events: list[Any] = Field(min_length=1, max_length=MAX_BATCH)


class ErrorReport(_Body):
    """A frontend (or API) error for ``/errors``."""

    error_type: Literal[ERROR_TYPES] = "javascript_error"  # type: ignore[valid-type]
    message: Text | None = None
    stack: Annotated[str, StringConstraints(max_length=8000)] | None = None
    component_name: ShortText | None = None
    page_path: Text | None = None
    api_endpoint: Text | None = None
    http_method: Annotated[str, StringConstraints(max_length=16)] | None = None
    status_code: Annotated[int, Field(ge=100, le=599)] | None = None
    event_id: uuid.UUID | None = None
    occurred_at: datetime | None = None
    event_data: dict[str, Any] = Field(default_factory=dict)

    _time = field_validator("occurred_at")(_check_time)
    _data = field_validator("event_data")(_check_event_data)
    _paths = field_validator("page_path", "api_endpoint")(_without_query)

    @model_validator(mode="after")
    def _says_something(self) -> ErrorReport:
        """``{}`` is no report: a stored error needs a message, a stack or a stated type."""
        if self.message is None and self.stack is None \
                and "error_type" not in self.model_fields_set:
            raise ValueError("an error report needs a message, a stack or an error_type")
        return self


class SessionPing(_Body):
    """An app-launch ping for ``/sessions``."""

    page_path: Text | None = None
    referrer: Text | None = None
    utm_source: ShortText | None = None
    utm_medium: ShortText | None = None
    utm_campaign: ShortText | None = None
    occurred_at: datetime | None = None

    _time = field_validator("occurred_at")(_check_time)
    _paths = field_validator("page_path", "referrer")(_without_query)


def landing_parts(url: str) -> tuple[str, dict[str, str]]:
    """A landing URL's path and its UTM parameters, decoded (ValueError: not a URL)."""
    parts = urlsplit(url)
    parts.port  # noqa: B018 — raises ValueError for a malformed host or port, as we want
    query = parse_qs(parts.query)
    utm = {key: values[0][:200] for key in ("utm_source", "utm_medium", "utm_campaign")
           if (values := query.get(key))}
    return parts.path[:2000], utm


class Collect(_Body):
    """A landing visit for ``/collect``: the URL's path and UTM parameters, never its query."""

    url: Text  # the landing page: a visit without one says nothing
    referrer: Text | None = None
    utm_source: ShortText | None = None
    utm_medium: ShortText | None = None
    utm_campaign: ShortText | None = None
    consent: bool | None = None
    event_id: uuid.UUID | None = None

    _referrer = field_validator("referrer")(_without_query)
    #: the URL's path and UTM parameters, decoded once here and stored from here
    _path: str = PrivateAttr(default="")
    _utm: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _landing_parts(self) -> Collect:
        """What is stored comes from the URL after decoding (``%00`` in a UTM value is a
        NUL): check that, not only the text that was sent, and keep it for the row."""
        try:
            path, utm = landing_parts(self.url)
        except ValueError:
            raise ValueError("url: not a valid URL") from None
        for key, value in {"path": path, **utm}.items():
            if "\x00" in value:
                raise ValueError(f"url: its {key} contains %00 (NUL), which cannot be stored")
        self._path, self._utm = path, utm
        return self

    @property
    def landing_path(self) -> str:
        return self._path

    @property
    def landing_utm(self) -> dict[str, str]:
        return self._utm


class Measure(_Body):
    """A conversion for ``/measure``; ``user_id`` is only ever stored as a keyed hash."""

    event: EventType
    storefront: ShortText | None = None
    user_id: ShortText | None = None
    event_id: uuid.UUID | None = None


def validate(model: type[_Body], body: Any, *, now: datetime | None = None,
             where: str = "body") -> Any:
    """Validate a parsed body against ``model``; InvalidInput names the first bad field."""
    if not isinstance(body, Mapping):
        raise InvalidInput(f"{where}: must be a JSON object")
    if model is not Batch:  # a batch's events are checked one by one
        check_storable(dict(body), where)
    try:
        return model.model_validate(body, context={"now": now or datetime.now(UTC)})
    except ValidationError as exc:
        raise InvalidInput(describe(exc, where)) from None


def describe(exc: ValidationError, where: str = "body") -> str:
    """The first validation error as ``field: problem`` for a JSON answer."""
    error = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in error["loc"]) or where
    if where != "body":
        field = f"{where}.{field}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{field}: {message}"
