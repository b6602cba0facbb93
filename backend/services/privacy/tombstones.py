"""The contract between "forget a user" and the event writer, so nothing resurrects them.

1. ``forget`` commits a tombstone (SHA-256 of the user id, expiring after
   ``TOMBSTONE_TTL``), then takes the forget lock exclusively
   (``waymark.lock_forget_exclusive()``) in the transaction that deletes the user's rows.
2. Every writer transaction that inserts user rows first takes the same lock shared
   (``waymark.lock_forget_shared()``) and drops the rows of which
   ``waymark.is_forgotten(user_id)`` is true.

The lock's key and the tombstone's hash are written once, in sql/functions/ (waymark.lock_forget_shared/exclusive, waymark.is_forgotten).

An insert that began before the tombstone existed holds the shared lock, so the delete
waits for it and removes its rows; an insert that begins after sees the tombstone.
"""

from __future__ import annotations

from datetime import timedelta

from backend.services.privacy import QUERIES

TOMBSTONE_TTL = timedelta(minutes=15)

#: forget's exclusive side of the lock; writers take it shared (``waymark.lock_forget_shared()``).
LOCK_EXCLUSIVE = QUERIES["lock_forget_exclusive"]
ADD_TOMBSTONE = QUERIES["add_tombstone"]
DELETE_EXPIRED = QUERIES["delete_expired"]
