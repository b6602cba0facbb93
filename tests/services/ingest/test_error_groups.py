"""Error fingerprints and groups: same bug → one group; counts of occurrences and people."""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from backend.services.ingest import error_groups

STACK = """TypeError: Cannot read properties of undefined (reading 'id')
    at QuestCard (https://app.example/static/js/main.3f2a9c1b.js?v=2:12:345)
    at renderWithHooks (https://app.example/static/js/vendor.9ab12cd3.js:1:99)
    at mountComponent (https://app.example/static/js/vendor.9ab12cd3.js:2:7)
    at deeper (x.js:1:1)"""


def test_variable_parts_do_not_change_the_fingerprint() -> None:
    a = {"error_type": "javascript_error", "message": "Quest 12 failed for 'ann' at "
         "https://x.example/a?b=1 id 3fa85f64-5717-4562-b3fc-2c963f66afa6", "stack": STACK}
    b = {"error_type": "javascript_error", "message": "Quest 977 failed for 'bob' at "
         "https://y.example/c id 00000000-0000-4000-8000-000000000000",
         "stack": STACK.replace(":12:345", ":80:1").replace("3f2a9c1b", "77aa77aa")}
    assert error_groups.fingerprint(a) == error_groups.fingerprint(b)
    c = dict(a, message="Network request failed")
    assert error_groups.fingerprint(c) != error_groups.fingerprint(a)
    assert error_groups.fingerprint(dict(a, error_type="network_error")) != \
        error_groups.fingerprint(a)


def test_top_frames_drop_line_numbers_queries_and_build_hashes() -> None:
    frames = error_groups.top_frames(STACK)
    assert frames == ["at QuestCard (https://app.example/static/js/main.js)",
                      "at renderWithHooks (https://app.example/static/js/vendor.js)",
                      "at mountComponent (https://app.example/static/js/vendor.js)"]


def test_grouping_reads_a_bounded_head_of_client_text() -> None:
    """What bounds a hostile report's cost (bench.redos): grouping reads only the head of the
    message, of the stack and of each frame, so text past it cannot change the result."""
    head = "https://app.example/" + "x" * error_groups.MESSAGE_HEAD  # normalises to "<url>"
    a = {"error_type": "javascript_error", "message": head + " first tail 1"}
    b = {"error_type": "javascript_error", "message": head + " another tail 2"}
    assert error_groups.fingerprint(a) == error_groups.fingerprint(b)
    noise = "noise line\n" * error_groups.STACK_LINES
    assert error_groups.top_frames(noise + "    at late (x.js:1:1)") == []
    long_frame = "    at f (https://app.example/" + "y" * error_groups.FRAME_HEAD + ")"
    assert len(error_groups.top_frames(long_frame)[0]) <= error_groups.FRAME_HEAD


def test_urls_are_found_by_their_scheme() -> None:
    """The scheme is bounded (20 characters), which still covers the schemes stacks carry."""
    for url in ("https://a.example/x", "chrome-extension://abc/d.js", "webpack-internal:///./x"):
        assert error_groups.normalise_message(f"failed at {url} now") == "failed at <url> now"


def test_api_errors_group_by_endpoint_shape() -> None:
    one = {"error_type": "api_error", "http_method": "POST", "status_code": 500,
           "api_endpoint": "/quests/17/start", "message": "HTTP 500"}
    two = dict(one, api_endpoint="/quests/3fa85f64-5717-4562-b3fc-2c963f66afa6/start")
    other = dict(one, api_endpoint="/badges/17/claim")
    assert error_groups.fingerprint(one) == error_groups.fingerprint(two)
    assert error_groups.fingerprint(one) != error_groups.fingerprint(other)


def _error(user: uuid.UUID | None, visitor: bytes | None, message: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"error_id": uuid.uuid4(), "occurred_at": now, "received_at": now, "user_id": user,
            "visitor_hash": visitor, "error_type": "javascript_error", "message": message,
            "source": "client", "event_data": {}}


def test_groups_count_occurrences_and_distinct_people(conn: psycopg.Connection[Any]) -> None:
    ann, bob = uuid.uuid4(), uuid.uuid4()
    first = [_error(ann, None, "boom 1"), _error(ann, None, "boom 2"), _error(None, b"v", "boom 3")]
    with conn.transaction():
        assert error_groups.write_errors(conn, first) == 3
    second = [_error(ann, None, "boom 4"), _error(bob, None, "boom 5"), first[0]]
    with conn.transaction():
        assert error_groups.write_errors(conn, second) == 2  # first[0] is a retry: ignored
    groups = conn.execute("SELECT occurrences, users_affected, message FROM error_groups"
                          ).fetchall()
    assert groups == [(5, 3, "boom 1")]
    assert conn.execute("SELECT count(*) FROM error_events WHERE group_id IS NOT NULL"
                        ).fetchone() == (5,)


# The URL pattern as it was read forwards; the module reads the reversed text instead.
FORWARD_URL = re.compile(r"\b[a-z][a-z0-9+.-]{0,19}://\S+", re.I)
URL_PIECES = ("https://", "://", "a-", "-", "x.y", "K", "\u212a", "\u017f", "_", " ", "\t", "9",
              "é", "'", "(", "@", "a" * 19, "a" * 21, "abcdefghijklmnopqrstu", "/x?y=1")


def test_the_reversed_url_pattern_finds_what_the_forward_one_does() -> None:
    """Leftmost first, one URL per token: the same replacements on generated text with
    schemes of every length, word boundaries, case-folded letters and several '://'."""
    rng = random.Random(19)
    for _ in range(20_000):
        text = "".join(rng.choice(URL_PIECES) for _ in range(rng.randint(0, 12)))
        reversed_pass = error_groups._URL_REVERSED.sub("U", text[::-1])[::-1]
        assert reversed_pass == FORWARD_URL.sub("U", text), text


class _Spy:
    """A compiled pattern that records the length of each text it replaces in."""

    def __init__(self, pattern: re.Pattern[str], lengths: list[int]) -> None:
        self.pattern, self.lengths = pattern, lengths

    def sub(self, repl: Any, string: str, count: int = 0) -> str:
        self.lengths.append(len(string))
        return self.pattern.sub(repl, string, count=count)

    def subn(self, repl: Any, string: str, count: int = 0) -> tuple[str, int]:
        self.lengths.append(len(string))
        return self.pattern.subn(repl, string, count=count)


@pytest.mark.parametrize("unit", ["9``", "9 ", "''x", "a-", "0\t"])
def test_no_pass_reads_more_than_the_head(monkeypatch: pytest.MonkeyPatch, unit: str) -> None:
    """A digit or an empty quote pair every few characters must not grow the text a later
    pass reads (spelt out at once, "<n>" and "<str>" tripled it: the worst report's cost)."""
    lengths: list[int] = []
    for name in ("_URL_REVERSED", "_QUOTED", "_UUID_OR_HEX", "_NUMBER"):
        monkeypatch.setattr(error_groups, name, _Spy(getattr(error_groups, name), lengths))
    error_groups.normalise_message(unit * 2000)
    assert len(lengths) == 4
    assert max(lengths) <= error_groups.MESSAGE_HEAD


def test_dense_messages_are_read_up_to_their_64th_number_or_quoted_string() -> None:
    """A message is cut after its 64th number and after its 64th quoted string (what a
    report of numbers or quote pairs costs is those replacements); placeholders change no
    result: spelt out, each part is what the pattern alone gives."""
    assert error_groups.MAX_PARTS == 64
    assert error_groups.normalise_message("7 " * 1000) == "<n> " * 63 + "<n>"
    assert error_groups.normalise_message("7." * 1000) == "<n>." * 63 + "<n>"
    assert error_groups.normalise_message("''" * 1000) == "<str>" * 64
    assert error_groups.normalise_message("9``" * 700) == ("<n><str>" * 63 + "<n>")[:500]
    assert error_groups.normalise_message("x '1' 2 " * 200) == ("x <str> <n> " * 63 + "x <str>")[:500]
    few = "x '1' 2 " * 40 + "end"  # 40 of each: nothing is cut
    assert error_groups.normalise_message(few) == "x <str> <n> " * 40 + "end"
    quoted = "'" + "7 " * 250 + "' 8"  # the quote swallows more numbers than the bound
    assert error_groups.normalise_message(quoted) == "<str> <n>"
    cut = {"error_type": "javascript_error", "message": "7 " * 64}
    assert error_groups.fingerprint(cut) == error_groups.fingerprint(
        dict(cut, message="7 " * 64 + "and then a different tail"))


def test_placeholders_read_as_the_tokens_they_stand_for() -> None:
    """A client that sends a placeholder character gets what typing the token gives."""
    for mark, token in error_groups.PLACEHOLDERS.items():
        assert error_groups.normalise_message(f"a {mark} b") == f"a {token} b"


# The passes as they ran before the uuid and hex patterns were read in one pass: uuids
# first, then quoted strings, then hex parts.
UUID_ALONE = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
HEX_ALONE = re.compile(r"\b(?:0x)?[0-9a-f]{8,}\b", re.I)
NUMBER_ALONE = re.compile(r"\b\d+(?:\.\d+)?\b")
TOKEN_PIECES = ("0", "7", "a", "F", "x", "X", "0x", "0X", "z", "_", "é", "\u0663", "12345678",
                "DeadBeef", "-", "3fa85f64-5717-4562-B3FC-2c963f66afa6", "3FA85F64-5717-4562-b3fc-2C963F66AFA6",
                "3fa85f64", "-5717", ".",
                "1.5", "1.5a", "00a", ".12345678", " ", "\n", "'", '"', "`", ":", "/",
                "https://a.example/b")


def _one_pass_at_a_time(message: str) -> str:
    text = error_groups._URL_REVERSED.sub("\ufdd0", message[::-1])[::-1]
    text = UUID_ALONE.sub("\ufdd1", text)
    text = error_groups._QUOTED.sub("\ufdd2", text)
    text = HEX_ALONE.sub("\ufdd3", text)
    text = NUMBER_ALONE.sub("\ufdd4", text)
    text = " ".join(text.split())
    for mark, token in error_groups.PLACEHOLDERS.items():
        text = text.replace(mark, token)
    return text[:error_groups.MESSAGE_KEEP]


def test_the_fast_patterns_give_what_the_plain_ones_gave_in_turn() -> None:
    """Uuids and hex parts are found in one scan after the quoted strings (a text of
    digits cost a scan of each), without re.I and with possessive runs; generated messages
    get the same result as the plain ``\\b``-bounded patterns applied one after another,
    uuids first."""
    rng = random.Random(22)
    for _ in range(20_000):
        text = "".join(rng.choice(TOKEN_PIECES) for _ in range(rng.randint(0, 16)))
        assert error_groups.normalise_message(text) == _one_pass_at_a_time(text), text
