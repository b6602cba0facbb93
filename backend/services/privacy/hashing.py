"""Keyed hashes that stand in for people: linkable within one salt period, never after.

HMAC-SHA256 keyed with the period's salt, truncated to 16 bytes (128 bits: no
collisions in practice, half the index size). Once the salt is deleted nobody,
Waymark included, can recompute or reverse a hash of that period.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

HASH_BYTES = 16


def keyed_hash(salt: bytes, *parts: str) -> bytes:
    """HMAC of the parts (unambiguously joined) under ``salt``."""
    message = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return hmac.new(salt, message, hashlib.sha256).digest()[:HASH_BYTES]


def visitor_hash_for_user(salt: bytes, user_id: uuid.UUID | str) -> bytes:
    """The visitor hash of a signed-in user: their id, never their device."""
    return keyed_hash(salt, "user", str(user_id).lower())


def visitor_hash_for_client(salt: bytes, origin: str, ip: str, user_agent: str) -> bytes:
    """The visitor hash of an anonymous client: site, address and browser together."""
    return keyed_hash(salt, "client", origin.lower(), ip, user_agent)


def reference_hash(salt: bytes, canonical: str) -> bytes:
    """A body-supplied identifier (``/measure``'s user_id) as stored: forget recomputes it."""
    return keyed_hash(salt, "ref", canonical)


def network_hash(salt: bytes, ip: str) -> bytes:
    """The network hash (address only) that links a landing visit to a later conversion."""
    return keyed_hash(salt, "network", ip)
