"""xAPI to a real LRS (Ralph on loopback): statements arrive once, a re-run adds none, and a
forget voids every statement of the forgotten learner — and only theirs."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from analytics_support import add_event
from click.testing import CliRunner

from backend.config import XapiSettings
from backend.db import Database
from backend.scripts.cli import main
from backend.services.exports import xapi
from backend.services.jobs import job_lock
from backend.services.privacy.forget import forget_user
from bench.stand_ins import RunningLrs, StandInUnavailable, running_lrs

HOME = "https://school.example"
ANN, BOB = uuid.UUID(int=0xA11), uuid.UUID(int=0xB0B)
AT = datetime(2026, 11, 20, 10, tzinfo=UTC)
KEY = b"k" * 32


# ---- the mapping (no LRS needed) --------------------------------------------------------


def row(event_type: str, data: dict[str, Any], user: uuid.UUID = ANN) -> dict[str, Any]:
    return {"event_id": uuid.UUID(int=7), "user_id": user, "event_type": event_type,
            "occurred_at": AT, "event_data": data}


def test_a_completed_quest_is_an_adl_completed_statement_by_a_pseudonymous_account() -> None:
    made = xapi.statement(row("quest_completed", {"quest_id": "q 1", "quest_title": "Ocean",
                                                  "pillar": "stem", "xp": 40}), KEY, HOME)
    assert made is not None
    ref = hashlib.sha256(str(ANN).encode()).hexdigest()
    assert made["actor"] == {"objectType": "Agent", "account": {
        "homePage": HOME, "name": hmac.new(KEY, ref.encode(), hashlib.sha256).hexdigest()}}
    assert str(ANN) not in json.dumps(made) and ref not in json.dumps(made)
    assert made["id"] == str(uuid.uuid5(xapi.NAMESPACE, str(uuid.UUID(int=7))))
    assert made["verb"]["id"] == "http://adlnet.gov/expapi/verbs/completed"
    assert made["object"] == {"objectType": "Activity", "id": HOME + "/quests/q%201",
                              "definition": {"type": "http://adlnet.gov/expapi/activities/module",
                                             "name": {"en": "Ocean"}}}
    assert made["result"] == {"completion": True,
                              "extensions": {HOME + "/xapi/extensions/xp": 40}}
    assert made["context"]["extensions"] == {HOME + "/xapi/extensions/pillar": "stem"}
    assert made["timestamp"] == "2026-11-20T10:00:00.000Z"


@pytest.mark.parametrize(("event_type", "verb"), [
    ("quest_started", "http://adlnet.gov/expapi/verbs/attempted"),
    ("badge_earned", "http://id.tincanapi.com/verb/earned"),
    ("tutor_message_sent", "http://adlnet.gov/expapi/verbs/asked"),
    ("login_success", "https://w3id.org/xapi/adl/verbs/logged-in"),
])
def test_each_kind_of_event_has_its_verb(event_type: str, verb: str) -> None:
    data = {"quest_id": "q1", "badge_id": "b1", "message": "is my essay good?"}
    made = xapi.statement(row(event_type, data), KEY, HOME)
    assert made is not None and made["verb"]["id"] == verb
    assert "essay" not in json.dumps(made)  # a tutor message's text never leaves


def test_unmapped_types_and_events_without_their_object_are_not_sent() -> None:
    assert xapi.statement(row("tutor_safety_flag", {}), KEY, HOME) is None
    assert xapi.statement(row("page_view", {}), KEY, HOME) is None
    assert xapi.statement(row("quest_started", {}), KEY, HOME) is None  # no quest_id


# ---- against Ralph ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def lrs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLrs]:
    try:
        with running_lrs(tmp_path_factory.mktemp("lrs")) as running:
            yield running
    except StandInUnavailable as exc:
        pytest.skip(str(exc))


def settings(lrs: RunningLrs) -> XapiSettings:
    return XapiSettings(endpoint=lrs.endpoint, authorization=lrs.authorization,
                        home_page=HOME, retry_base_seconds=0.1)


def sync(conn: psycopg.Connection[Any], lrs: RunningLrs) -> xapi.SyncStats:
    return xapi.sync(conn, xapi.Lrs(settings(lrs)), HOME, now=datetime.now(UTC),
                     settle=timedelta(0))


def seed(conn: psycopg.Connection[Any]) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Ann and Bob's mapped events (by user), and some that must never be sent."""
    ids: dict[uuid.UUID, list[uuid.UUID]] = {ANN: [], BOB: []}
    for user in (ANN, BOB):
        for i, (kind, data) in enumerate([
                ("quest_started", {"quest_id": "q1"}),
                ("quest_completed", {"quest_id": "q1", "xp": 10, "pillar": "arts"}),
                ("badge_earned", {"badge_id": "b1"}),
                ("tutor_message_sent", {"message": "help me"}),
                ("login_success", {})]):
            ids[user].append(add_event(conn, kind, AT + timedelta(minutes=i), user_id=user,
                                       data=data))
    add_event(conn, "page_view", AT, user_id=ANN)  # not a learning event
    add_event(conn, "tutor_safety_flag", AT, user_id=ANN)  # never sent
    add_event(conn, "quest_started", AT, data={"quest_id": "q1"})  # anonymous: no actor
    add_event(conn, "quest_started", AT, user_id=BOB)  # no quest_id: no object
    return ids


def agent_of(conn: psycopg.Connection[Any], lrs: RunningLrs, user: uuid.UUID) -> dict[str, Any]:
    key = conn.execute("SELECT actor_key FROM waymark.xapi_targets WHERE endpoint = %s",
                       (lrs.endpoint,)).fetchone()
    assert key is not None
    return xapi.actor(bytes(key[0]), xapi.user_ref(user), HOME)


def test_statements_reach_the_lrs_once_and_a_forget_voids_them(
        conn: psycopg.Connection[Any], db: Database, lrs: RunningLrs) -> None:
    ids = seed(conn)
    before = len(lrs.stored())
    first = sync(conn, lrs)
    assert (first.statements, first.skipped) == (10, 1)
    ann, bob = agent_of(conn, lrs, ANN), agent_of(conn, lrs, BOB)
    assert {s["id"] for s in lrs.statements_of(ann)} == {xapi.statement_id(e) for e in ids[ANN]}
    assert len(lrs.statements_of(bob)) == 5
    stored = json.dumps(lrs.stored())
    assert str(ANN) not in stored and str(BOB) not in stored and "help me" not in stored

    # a re-run sends nothing; a run that lost its watermark (a crash before saving it)
    # sends the same ids again and the LRS keeps each once
    assert sync(conn, lrs).statements == 0
    conn.execute("UPDATE waymark.xapi_targets SET sent_before = '1970-01-01'")
    assert sync(conn, lrs).statements == 10
    assert len(lrs.stored()) == before + 10

    forget_user(db, ANN, now=datetime.now(UTC))
    # pages of 2: Ann's statements come in three pages, through the LRS's "more" links
    voided = xapi.sync(conn, xapi.Lrs(settings(lrs), page_size=2), HOME, now=datetime.now(UTC),
                       settle=timedelta(0))
    assert (voided.forgets, voided.voided) == (1, 5)
    answered = lrs.statements_of(ann)
    targets = {s["id"] for s in answered if s["verb"]["id"] != xapi.VOIDED}
    voids = {s["object"]["id"] for s in answered if s["verb"]["id"] == xapi.VOIDED}
    assert targets == {xapi.statement_id(e) for e in ids[ANN]} and voids == targets
    assert all(s["verb"]["id"] != xapi.VOIDED for s in lrs.statements_of(bob))
    audit = conn.execute("SELECT details FROM privacy_audit WHERE action = 'xapi_void'"
                         ).fetchall()
    assert [a[0]["statements"] for a in audit] == [5]
    assert str(ANN) not in json.dumps(audit) and ann["account"]["name"] not in json.dumps(audit)

    again = sync(conn, lrs)  # the forget is done: nothing is voided twice
    assert (again.forgets, again.voided, again.statements) == (0, 0, 0)


def test_the_command_sends_and_says_so(db_url: str, conn: psycopg.Connection[Any],
                                       lrs: RunningLrs) -> None:
    add_event(conn, "badge_earned", datetime.now(UTC) - timedelta(hours=1), user_id=BOB,
              data={"badge_id": "b9"})
    env = {"DATABASE_URL": db_url, "WAYMARK_XAPI_ENDPOINT": lrs.endpoint,
           "WAYMARK_XAPI_AUTH": lrs.authorization, "WAYMARK_XAPI_HOME_PAGE": HOME}
    result = CliRunner().invoke(main, ["xapi-sync", "--settle-minutes", "0"], env=env)
    assert result.exit_code == 0, result.output
    assert "waymark xapi-sync: status=done statements=1 skipped=0 forgets=0 voided=0" \
        in result.output


def test_a_refusing_lrs_fails_the_command_loudly(db_url: str, conn: psycopg.Connection[Any],
                                                 lrs: RunningLrs) -> None:
    add_event(conn, "badge_earned", datetime.now(UTC) - timedelta(hours=1), user_id=BOB,
              data={"badge_id": "b9"})
    env = {"DATABASE_URL": db_url, "WAYMARK_XAPI_ENDPOINT": lrs.endpoint,
           "WAYMARK_XAPI_AUTH": "waymark:wrong-password", "WAYMARK_XAPI_HOME_PAGE": HOME}
    result = CliRunner().invoke(main, ["xapi-sync", "--settle-minutes", "0"], env=env)
    assert result.exit_code == 1 and "the LRS answered 401" in result.output
    row = conn.execute("SELECT statements_sent FROM waymark.xapi_targets").fetchone()
    assert row == (0,)  # nothing counted as sent: the next run sends it


def test_without_an_endpoint_the_command_says_what_to_set(db_url: str) -> None:
    result = CliRunner().invoke(main, ["xapi-sync"], env={"DATABASE_URL": db_url,
                                                          "WAYMARK_XAPI_ENDPOINT": ""})
    assert result.exit_code == 1 and "WAYMARK_XAPI_ENDPOINT" in result.output


# ---- retries (a local HTTP receiver that fails on purpose) -----------------------------


class FlakyLrs(BaseHTTPRequestHandler):
    """Answers each POST with the next status of ``statuses`` (then 200), recording bodies."""

    statuses: list[int] = []
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        type(self).bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "try later"}' if status >= 400 else b"[]")

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def flaky() -> Iterator[str]:
    FlakyLrs.statuses, FlakyLrs.bodies = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyLrs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/xAPI"
    server.shutdown()
    server.server_close()


def test_transient_failures_are_retried_and_a_refusal_is_not(flaky: str) -> None:
    lrs = xapi.Lrs(XapiSettings(endpoint=flaky, home_page=HOME, retry_base_seconds=0.01))
    one = xapi.statement(row("badge_earned", {"badge_id": "b1"}), KEY, HOME)
    assert one is not None
    FlakyLrs.statuses = [503, 429]
    lrs.post([one])
    assert len(FlakyLrs.bodies) == 3 and json.loads(FlakyLrs.bodies[-1]) == [one]
    FlakyLrs.statuses, FlakyLrs.bodies = [400], []
    with pytest.raises(xapi.LrsError, match="answered 400"):
        lrs.post([one])
    assert len(FlakyLrs.bodies) == 1
    FlakyLrs.statuses, FlakyLrs.bodies = [500] * 5, []
    with pytest.raises(xapi.LrsError, match="after 5 attempts"):
        lrs.post([one])
    assert len(FlakyLrs.bodies) == 5


def test_a_second_concurrent_run_skips(db_url: str, db: Database) -> None:
    """Like every job: a run while another holds the lock says so and sends nothing."""
    env = {"DATABASE_URL": db_url, "WAYMARK_XAPI_ENDPOINT": "http://127.0.0.1:9/xAPI",
           "WAYMARK_XAPI_HOME_PAGE": HOME}
    with job_lock(db, "xapi-sync") as acquired:
        assert acquired
        result = CliRunner().invoke(main, ["xapi-sync"], env=env)
    assert result.exit_code == 0, result.output
    assert "waymark xapi-sync: status=skipped reason=another-run-holds-the-lock" in result.output
