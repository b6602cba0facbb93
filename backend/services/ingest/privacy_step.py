"""The privacy step (docs/privacy.md), run by the writer thread before anything is kept.

It turns a queued item's raw client facts (IP, user agent, origin, bearer token) into what
may be stored — a keyed visitor hash, a network hash where asked, browser/OS/device families
and a verified user id — and then drops them. Crawlers are recognised here and never stored.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import crawleruseragents
import psycopg
import user_agents

from backend.config import Settings
from backend.services.privacy import hashing, salts

log = logging.getLogger("waymark.privacy")

UA_CACHE_SIZE = 4096
TOKEN_CACHE_SIZE = 4096
USER_HASH_CACHE_SIZE = 50_000
CLIENT_HASH_CACHE_SIZE = 50_000
MAX_UA_LENGTH = 1000  # longer strings are not browsers; do not spend a parse on them


class UAInfo(NamedTuple):
    """What is kept of a user agent: families and a device class, or why it is a crawler."""

    browser: str | None
    os: str | None
    device_type: str | None
    bot_reason: str | None


NO_UA = UAInfo(None, None, None, None)

#: a connection, or a function that opens one only when it is needed.
Conn = psycopg.Connection[Any] | Callable[[], psycopg.Connection[Any]]


def _family(name: str | None) -> str | None:
    if not name or name == "Other":
        return None
    return name[:64]


def reduce_user_agent(ua: str) -> UAInfo:
    """Parse a user agent (uncached: ~1.7 ms) into families, device class and bot verdict."""
    if not ua:
        return NO_UA
    if len(ua) > MAX_UA_LENGTH:
        return UAInfo(None, None, None, "oversized_user_agent")
    parsed = user_agents.parse(ua)
    if parsed.is_bot:
        reason: str | None = "ua_parser_bot"
    elif crawleruseragents.is_crawler(ua):
        reason = "crawler_list"
    else:
        reason = None
    if parsed.is_tablet:
        device = "tablet"
    elif parsed.is_mobile:
        device = "mobile"
    elif parsed.is_pc:
        device = "desktop"
    else:
        device = "other"
    return UAInfo(_family(parsed.browser.family), _family(parsed.os.family), device, reason)


class SaltCache:
    """The salt of each period, fetched (or created) once per process per period."""

    def __init__(self, period: str) -> None:
        self.period = period
        self._salts: dict[datetime, bytes] = {}
        self._current: tuple[datetime, datetime, bytes] | None = None
        self.created = 0

    def salt_for(self, conn: Conn, at: datetime) -> bytes:
        """The salt of the period containing ``at``; one database round trip per period."""
        current = self._current
        if current is not None and at < current[1]:
            # the common case, without date arithmetic; an item received in a period that
            # is already over takes the newer salt: a past salt is never created again
            return current[2]
        start = salts.period_start(at, self.period)
        now = datetime.now(UTC)
        if salts.next_period_start(start, self.period) <= now:  # that period is over
            start = salts.period_start(now, self.period)
        salt = self._salts.get(start)
        if salt is None:
            if callable(conn):  # a connection is opened only when a salt is not cached
                conn = conn()
            with conn.transaction():
                salt, created = salts.get_or_create_salt(conn, start)
            self.created += int(created)
            self._salts.clear()  # only the current period's salt is kept in memory
            self._salts[start] = salt
        self._current = (start, salts.next_period_start(start, self.period), salt)
        return salt

    def forget(self) -> None:
        """Drop every cached salt (after a fork, or when the rotate job deleted them)."""
        self._salts.clear()
        self._current = None

    def expire(self, now: datetime) -> bool:
        """Drop the cached salt once its period is over, even if no event comes to replace it.

        A finished period's salt must not outlive its period in memory either: a quiet
        process would otherwise hold it until its next event. Returns whether it dropped it.
        """
        current = self._current
        if current is None or now < current[1]:
            return False
        self.forget()
        return True


Verifier = Callable[[str], tuple[uuid.UUID | None, float]]


@dataclass
class TokenCache:
    """Verified bearer tokens → user id, remembered until the token's own expiry (≤ 5 min)."""

    verify: Verifier
    entries: dict[str, tuple[uuid.UUID | None, float]]

    def user_for(self, token: str) -> uuid.UUID | None:
        """The user of a valid token; None for an invalid one (the event stays anonymous)."""
        hit = self.entries.get(token)
        now = time.time()
        if hit is not None and hit[1] > now:
            return hit[0]
        user_id, expires = self.verify(token)
        if len(self.entries) >= TOKEN_CACHE_SIZE:
            self.entries.clear()
        # an invalid token is remembered for a minute so a flood of them costs one check
        self.entries[token] = (user_id, min(expires, now + (60.0 if user_id is None else 300.0)))
        return user_id


def no_tokens(token: str) -> tuple[uuid.UUID | None, float]:
    """The verifier of a writer built without one: every token is ignored (stored anonymously)."""
    return None, time.time() + 60.0


def canonical_ref(raw: str) -> str:
    """One spelling per identifier, so ``forget`` (which hashes ``str(uuid)``) finds it.

    A uuid in any accepted spelling (upper case, no dashes, braces) becomes its canonical
    lower-case form; any other identifier is only trimmed.
    """
    try:
        return str(uuid.UUID(raw.strip()))
    except ValueError:
        return raw.strip()


class PrivacyStep:
    """Applies the privacy rules (docs/privacy.md) to queued items: hash, reduce, verify, drop the raw facts."""

    def __init__(self, settings: Settings,
                 verify: Verifier | None = None) -> None:
        self.salts = SaltCache(settings.salt_period)
        self.tokens = TokenCache(verify or no_tokens, {})
        self.reduce = functools.lru_cache(maxsize=UA_CACHE_SIZE)(reduce_user_agent)
        self.invalid_tokens = 0
        self._user_hashes: dict[tuple[bytes, Any], bytes] = {}
        self._client_hashes: dict[int, bytes] = {}
        self._client_salt: bytes | None = None

    def expire_salts(self, now: datetime) -> None:
        """Forget a finished period's salt and every hash memoised under it (called when idle)."""
        if self.salts.expire(now):
            self._user_hashes.clear()
            self._client_hashes.clear()
            self._client_salt = None

    def client_hash(self, salt: bytes, origin: str, ip: str, ua: str) -> bytes:
        """An anonymous client's visitor hash, memoised per salt (visitors send many events).

        The HMAC is ~4 µs per event. The memo's key is Python's own hash of the three
        facts (keyed with the process's random hash secret), never the facts themselves:
        no raw address or user agent stays in memory. Two clients' facts sharing that
        64-bit key (odds ~1e-10 among 50,000 clients) would share a visitor hash.
        """
        if salt is not self._client_salt:
            self._client_hashes.clear()  # a new period: an old salt's hashes must go
            self._client_salt = salt
        key = hash((origin, ip, ua))
        found = self._client_hashes.get(key)
        if found is None:
            if len(self._client_hashes) >= CLIENT_HASH_CACHE_SIZE:
                self._client_hashes.clear()
            found = self._client_hashes[key] = hashing.visitor_hash_for_client(
                salt, origin, ip, ua)
        return found

    def user_hash(self, salt: bytes, user_id: Any) -> bytes:
        """A signed-in user's visitor hash, memoised per salt (users send many events)."""
        key = (salt, user_id)
        found = self._user_hashes.get(key)
        if found is None:
            if len(self._user_hashes) >= USER_HASH_CACHE_SIZE or (
                    self._user_hashes and next(iter(self._user_hashes))[0] != salt):
                # full, or a new period began: an old salt must not linger in memory
                self._user_hashes.clear()
            found = self._user_hashes[key] = hashing.visitor_hash_for_user(salt, user_id)
        return found

    def apply(self, conn: Conn, item: dict[str, Any]) -> dict[str, Any] | str:
        """The storable row of ``item``, or the reason it is not stored (e.g. a crawler)."""
        row: dict[str, Any] = item["row"]
        client: dict[str, Any] | None = item.get("client")
        user_id = item.get("user_id")
        if client is None:
            row["user_id"] = user_id
            if user_id is not None:
                salt = self.salts.salt_for(conn, item["received_at"])
                row["visitor_hash"] = self.user_hash(salt, user_id)
            self._hash_refs(item, row, conn)
            return row
        info = self.reduce(client.get("ua") or "")
        if info.bot_reason is not None:
            return info.bot_reason
        token = client.get("token")
        if user_id is None and token:
            user_id = self.tokens.user_for(token)
            if user_id is None:
                self.invalid_tokens += 1
        salt = self.salts.salt_for(conn, item["received_at"])
        ip = client.get("ip") or ""
        if user_id is not None:
            row["visitor_hash"] = self.user_hash(salt, user_id)
        else:
            row["visitor_hash"] = self.client_hash(
                salt, client.get("origin") or "", ip, client.get("ua") or "")
        if item.get("network"):
            row["network_hash"] = hashing.network_hash(salt, ip)
        row["user_id"] = user_id
        row["browser"], row["os"], row["device_type"] = info.browser, info.os, info.device_type
        self._hash_refs(item, row, conn)
        return row

    def _hash_refs(self, item: dict[str, Any], row: dict[str, Any],
                   conn: Conn) -> None:
        """Store body-supplied identifiers (``/measure``'s user_id) only as keyed hashes."""
        refs: dict[str, str] | None = item.get("hash_refs")
        if not refs:
            return
        salt = self.salts.salt_for(conn, item["received_at"])
        data = dict(row.get("event_data") or {})
        for key, raw in refs.items():
            data[key] = hashing.reference_hash(salt, canonical_ref(raw)).hex()
        row["event_data"] = data
