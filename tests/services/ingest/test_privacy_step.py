"""The privacy step: salts per period (rotation at the boundary), UA reduction, crawlers, tokens."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from freezegun import freeze_time
from ingestion_support import CHROME_UA, GOOGLEBOT_UA, IPHONE_UA

from backend.config import Settings
from backend.services.ingest import items
from backend.services.ingest.privacy_step import PrivacyStep, TokenCache, reduce_user_agent
from backend.services.privacy import hashing

IPAD_UA = ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
           "Version/16.6 Mobile/15E148 Safari/604.1")


def _item(ip: str = "192.0.2.7", ua: str = CHROME_UA) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"kind": "event", "row": items.event_row("page_view", now), "received_at": now,
            "client": items.client(ip, ua, "https://a.example", None), "user_id": None}


def _hash(step: PrivacyStep, conn: psycopg.Connection[Any], **kw: Any) -> bytes:
    row = step.apply(conn, _item(**kw))
    assert isinstance(row, dict)
    return bytes(row["visitor_hash"])


def _step(period: str = "day") -> PrivacyStep:
    return PrivacyStep(Settings(salt_period=period), lambda t: (None, time.time() + 60))


@pytest.mark.parametrize(("period", "before", "same", "after"), [
    ("day", "2026-03-14T23:59:58Z", "2026-03-14T00:00:01Z", "2026-03-15T00:00:00Z"),
    ("month", "2026-03-31T23:59:59Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:01Z"),
])
def test_hashes_rotate_at_the_period_boundary(conn: psycopg.Connection[Any], period: str,
                                              before: str, same: str, after: str) -> None:
    step = _step(period)
    with freeze_time(before):
        first = _hash(step, conn)
    with freeze_time(same):
        assert _hash(step, conn) == first  # same period: linkable
        assert _hash(_step(period), conn) == first  # another process agrees (shared salt)
    with freeze_time(after):
        assert _hash(step, conn) != first  # next period: a new salt, unlinkable
    salts = conn.execute("SELECT count(*) FROM tracking_salts").fetchone()
    assert salts == (2,)


def test_hash_depends_on_ip_and_user_agent(conn: psycopg.Connection[Any]) -> None:
    step = _step()
    base = _hash(step, conn)
    assert _hash(step, conn, ip="192.0.2.8") != base
    assert _hash(step, conn, ua=IPHONE_UA) != base
    assert _hash(step, conn) == base


def test_raw_client_facts_never_reach_the_row(conn: psycopg.Connection[Any]) -> None:
    row = _step().apply(conn, _item())
    assert isinstance(row, dict)
    assert "192.0.2.7" not in repr(row) and CHROME_UA not in repr(row)
    assert (row["browser"], row["os"], row["device_type"]) == ("Chrome", "Windows", "desktop")


@pytest.mark.parametrize(("ua", "device", "bot"), [
    (CHROME_UA, "desktop", None),
    (IPHONE_UA, "mobile", None),
    (IPAD_UA, "tablet", None),
    (GOOGLEBOT_UA, "other", "ua_parser_bot"),
    ("Mozilla/5.0 (compatible; GPTBot/1.0; +https://openai.com/gptbot)", None, "any"),
    ("HeadlessChrome/120.0 Mozilla/5.0 (X11; Linux x86_64)", None, "any"),
    ("x" * 1001, None, "oversized_user_agent"),
])
def test_user_agent_reduction_and_crawler_detection(ua: str, device: str | None,
                                                    bot: str | None) -> None:
    info = reduce_user_agent(ua)
    if bot == "any":
        assert info.bot_reason is not None
    else:
        assert info.bot_reason == bot
    if device is not None:
        assert info.device_type == device


def test_crawler_item_is_refused_with_its_reason(conn: psycopg.Connection[Any]) -> None:
    assert _step().apply(conn, _item(ua=GOOGLEBOT_UA)) == "ua_parser_bot"


def test_token_cache_checks_each_token_once_until_it_expires() -> None:
    calls: list[str] = []
    user = uuid.uuid4()

    def verify(token: str) -> tuple[uuid.UUID | None, float]:
        calls.append(token)
        return (user if token == "good" else None), time.time() + 3600

    cache = TokenCache(verify, {})
    assert cache.user_for("good") == user and cache.user_for("good") == user
    assert cache.user_for("bad") is None and cache.user_for("bad") is None
    assert calls == ["good", "bad"]
    with freeze_time(datetime.now(UTC).replace(microsecond=0).isoformat()) as frozen:
        frozen.tick(400)  # past the 5-minute cap: verified again
        cache.user_for("good")
    assert calls == ["good", "bad", "good"]


def test_a_finished_periods_salt_is_never_created_again(conn: psycopg.Connection[Any]) -> None:
    late = _item()
    late["received_at"] = datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC)  # queued before midnight
    with freeze_time("2026-03-15T00:10:00Z"):  # written after midnight (and after rotation)
        row = _step().apply(conn, late)
    assert isinstance(row, dict)
    periods = [r[0] for r in conn.execute("SELECT period_start FROM tracking_salts")]
    assert periods == [datetime(2026, 3, 15, tzinfo=UTC)]


def test_a_finished_periods_salt_leaves_memory_without_waiting_for_an_event(
        conn: psycopg.Connection[Any]) -> None:
    step = _step()
    with freeze_time("2026-03-14T23:59:00Z"):
        item = _item()
        item["user_id"] = uuid.UUID("a0000000-0000-4000-8000-00000000000a")
        step.apply(conn, item)
        step.apply(conn, _item())  # an anonymous client
    salt = conn.execute("SELECT salt FROM tracking_salts").fetchone()[0]  # type: ignore[index]
    held = [key[0] for key in step._user_hashes] + list(step.salts._salts.values())
    assert held and all(bytes(s) == bytes(salt) for s in held)
    assert step._client_salt is not None and bytes(step._client_salt) == bytes(salt)
    step.expire_salts(datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC))  # still its period
    assert step.salts._salts and step._user_hashes and step._client_hashes
    step.expire_salts(datetime(2026, 3, 15, 0, 0, 1, tzinfo=UTC))  # the period is over
    assert step.salts._salts == {} and step._user_hashes == {} and step._client_hashes == {}
    assert step._client_salt is None


def test_the_client_hash_memo_gives_the_hmac_and_keeps_no_raw_fact() -> None:
    step = _step()
    first, second = b"s" * 32, b"t" * 32
    facts = ("https://a.example", "192.0.2.1", "UA/1")
    assert step.client_hash(first, *facts) == hashing.visitor_hash_for_client(first, *facts)
    assert step.client_hash(first, *facts) == hashing.visitor_hash_for_client(first, *facts)
    other = ("https://a.example", "192.0.2.2", "UA/1")
    assert step.client_hash(first, *other) == hashing.visitor_hash_for_client(first, *other)
    assert len(step._client_hashes) == 2
    assert all(isinstance(key, int) for key in step._client_hashes)  # never the facts
    assert step.client_hash(second, *facts) == hashing.visitor_hash_for_client(second, *facts)
    assert len(step._client_hashes) == 1  # the first salt's hashes are gone


@pytest.mark.parametrize("spelling", [
    "a0000000-0000-4000-8000-00000000000a", "A0000000-0000-4000-8000-00000000000A",
    "a00000000000400080000000000000 0a".replace(" ", ""), "{a0000000-0000-4000-8000-00000000000a}",
])
def test_measure_user_ids_hash_the_same_in_every_spelling(spelling: str) -> None:
    from backend.services.ingest.privacy_step import canonical_ref

    assert canonical_ref(spelling) == "a0000000-0000-4000-8000-00000000000a"
    assert canonical_ref("  player-42 ") == "player-42"
