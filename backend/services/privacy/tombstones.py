"""The contract between "forget a user" and the event writer, so nothing resurrects them.

1. ``forget`` commits a tombstone (SHA-256 of the user id, expiring after
   ``TOMBSTONE_TTL``), then takes ``FORGET_LOCK`` exclusively in the transaction that
   deletes the user's rows.
2. Every writer transaction that inserts user rows first takes ``FORGET_LOCK`` shared
   (``LOCK_SHARED``) and filters its rows with ``NOT_FORGOTTEN`` (a predicate on a
   ``user_id`` column of the row source aliased ``s``).

An insert that began before the tombstone existed holds the shared lock, so the delete
waits for it and removes its rows; an insert that begins after sees the tombstone.
"""

from __future__ import annotations

from datetime import timedelta

#: advisory lock key (two 32-bit ints) shared by writers and forget.
FORGET_LOCK = (0x57A1, 0x0F06)
TOMBSTONE_TTL = timedelta(minutes=15)

LOCK_SHARED = "SELECT pg_advisory_xact_lock_shared(22433, 3846)"
LOCK_EXCLUSIVE = "SELECT pg_advisory_xact_lock(22433, 3846)"

USER_ID_HASH = "sha256(convert_to(lower({column}::text), 'UTF8'))"

NOT_FORGOTTEN = (
    "(s.user_id IS NULL OR NOT EXISTS (SELECT 1 FROM waymark.forgotten_users f "
    "WHERE f.user_id_hash = sha256(convert_to(lower(s.user_id::text), 'UTF8')) "
    "AND f.expires_at > now()))"
)

ADD_TOMBSTONE = """
INSERT INTO waymark.forgotten_users (user_id_hash, expires_at)
VALUES (sha256(convert_to(lower(%(user_id)s::text), 'UTF8')), now() + %(ttl)s)
ON CONFLICT (user_id_hash) DO UPDATE SET expires_at = EXCLUDED.expires_at
"""

DELETE_EXPIRED = "DELETE FROM waymark.forgotten_users WHERE expires_at <= now()"

assert FORGET_LOCK == (22433, 3846)
