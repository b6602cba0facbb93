"""Validated query and path parameters: bounded numbers and uuids, 400 on nonsense.

Routes call these instead of ``int(request.args[...])``; a bad value raises
:class:`ParamError`, which the analytics blueprint answers as 400 ``{"error": ...}``
naming the parameter and the accepted range.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping

from backend.ids import canonical_uuid

#: Bounds of the analytics parameters (inclusive).
DAYS_RANGE = (1, 365)
LIMIT_RANGE = (1, 100)
AT_RISK_LIMIT_RANGE = (1, 10_000)
THRESHOLD_RANGE = (0.0, 1.0)
#: ASCII digits only: ``str.isdigit`` also takes superscripts ("²"), which ``int`` refuses.
WHOLE_NUMBER = re.compile(r"-?[0-9]{1,11}")


class ParamError(ValueError):
    """A request parameter is missing its form or range; ``message`` says what to send."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def int_arg(args: Mapping[str, str], name: str, default: int, bounds: tuple[int, int]) -> int:
    """A whole-number parameter within ``bounds`` (the default when absent)."""
    raw = args.get(name)
    low, high = bounds
    if raw is None:
        return default
    text = raw.strip()
    if WHOLE_NUMBER.fullmatch(text) is None:
        raise ParamError(f"{name} must be a whole number from {low} to {high}, not {raw!r}")
    value = int(text)
    if not low <= value <= high:
        raise ParamError(f"{name} must be from {low} to {high}, not {value}")
    return value


def float_arg(args: Mapping[str, str], name: str, default: float,
              bounds: tuple[float, float]) -> float:
    """A finite number parameter within ``bounds`` (the default when absent)."""
    raw = args.get(name)
    low, high = bounds
    if raw is None:
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ParamError(f"{name} must be a number from {low:g} to {high:g}, not {raw!r}") \
            from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ParamError(f"{name} must be a number from {low:g} to {high:g}, not {raw!r}")
    return value


def bool_arg(args: Mapping[str, str], name: str, default: bool) -> bool:
    """A yes/no parameter: true/false, 1/0, yes/no (the default when absent)."""
    raw = args.get(name)
    if raw is None:
        return default
    text = raw.strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no"):
        return False
    raise ParamError(f"{name} must be true or false, not {raw[:64]!r}")


def uuid_arg(value: str, name: str = "user_id") -> uuid.UUID:
    """A uuid path parameter."""
    try:
        return canonical_uuid(value)
    except ValueError:
        raise ParamError(f"{name} must be a UUID, not {value[:64]!r}") from None
