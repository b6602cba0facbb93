"""User ids as one canonical form, the one PostgreSQL's ``uuid`` type and our policies use.

Python's ``uuid.UUID`` also accepts ``urn:uuid:…``, braces and hex without hyphens;
PostgreSQL's ``auth.uid()`` casts the token's ``sub`` as text and refuses the URN form.
A token or path whose id is accepted on one side and refused on the other is a 500 at
best and a mismatch at worst, so ids from outside are taken only in the canonical form.
"""

from __future__ import annotations

import uuid


def canonical_uuid(value: object) -> uuid.UUID:
    """``value`` as a UUID if it is written as ``8-4-4-4-12`` hex digits, else ValueError."""
    text = str(value)
    parsed = uuid.UUID(text)
    if str(parsed) != text.lower():
        raise ValueError(f"not a canonical UUID: {text[:64]!r}")
    return parsed
