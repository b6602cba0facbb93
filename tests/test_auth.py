"""Token verification and the web layer's 401/403 answers (backend/auth.py)."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from conftest import TEST_JWT_SECRET, AuthTokens
from flask import Flask, jsonify
from flask.testing import FlaskClient
from psycopg.conninfo import make_conninfo

from backend import auth as authmod
from backend import security
from backend.auth import AuthError, current_caller, require_access_to, require_caller
from backend.config import Settings
from backend.db import Database

pytestmark = pytest.mark.filterwarnings("ignore:The HMAC key")

SETTINGS = Settings(jwt_secret=TEST_JWT_SECRET)
SUPABASE = "https://abcd.supabase.co"
STUDENT = uuid.UUID("00000000-0000-4000-8000-00000000000a")
PARENT = uuid.UUID("00000000-0000-4000-8000-00000000000b")
OTHER = uuid.UUID("00000000-0000-4000-8000-00000000000c")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _supabase_key(role: str) -> str:
    """What Supabase's anon / service-role API keys look like: no sub, no aud."""
    now = int(time.time())
    return jwt.encode({"iss": "supabase", "ref": "abcd", "role": role, "iat": now,
                       "exp": now + 10 * 365 * 86400}, TEST_JWT_SECRET, algorithm="HS256")


def _encode(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")


def _tampered(auth: AuthTokens) -> str:
    header, _payload, signature = auth.token(STUDENT).split(".")
    forged = auth.claims(STUDENT, "admin")
    return ".".join([header, _b64(json.dumps(forged).encode()), signature])


def _alg_none(auth: AuthTokens) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(auth.claims(STUDENT, "admin")).encode())
    return f"{header}.{payload}."


BAD_TOKENS: dict[str, Any] = {
    "expired": lambda a: a.token(STUDENT, exp=int(time.time()) - 60),
    "wrong secret": lambda a: jwt.encode(a.claims(STUDENT), "another-secret-that-is-32-bytes-long!",
                                         algorithm="HS256"),
    "alg none": _alg_none,
    "aud anon": lambda a: a.token(STUDENT, aud="anon"),
    "anon key": lambda a: _supabase_key("anon"),
    "service-role key": lambda a: _supabase_key("service_role"),
    "service-role claims with sub and aud": lambda a: _encode({**a.claims(STUDENT, "admin"),
                                                               "role": "service_role"}),
    "no sub": lambda a: jwt.encode({k: v for k, v in a.claims(STUDENT).items() if k != "sub"},
                                   TEST_JWT_SECRET, algorithm="HS256"),
    "non-uuid sub": lambda a: a.token("not-a-uuid"),
    # forms Python's uuid.UUID accepts and PostgreSQL's auth.uid() does not (a 500 before)
    "urn:uuid sub": lambda a: a.token(f"urn:uuid:{STUDENT}"),
    "braced sub": lambda a: a.token(f"{{{STUDENT}}}"),
    "hyphenless sub": lambda a: a.token(STUDENT.hex),
    "tampered payload": _tampered,
    "garbage": lambda a: "this.is.not-a-jwt",
    "oversize": lambda a: a.token(STUDENT, padding="x" * 9000),
    "no exp": lambda a: jwt.encode({k: v for k, v in a.claims(STUDENT).items() if k != "exp"},
                                   TEST_JWT_SECRET, algorithm="HS256"),
    "HS384 (algorithm not pinned)": lambda a: jwt.encode(a.claims(STUDENT), TEST_JWT_SECRET,
                                                         algorithm="HS384"),
    "unknown app role": lambda a: a.token(STUDENT, "superuser"),
    "anonymous sign-in claiming admin": lambda a: a.token(STUDENT, "admin", is_anonymous=True),
    "not yet valid": lambda a: a.token(STUDENT, nbf=int(time.time()) + 3600),
    # accepted by PyJWT, refused by us (a NumericDate is a number; no session lasts years)
    "exp as a string": lambda a: a.token(STUDENT, exp=str(int(time.time()) + 600)),
    "exp a century away": lambda a: a.token(STUDENT, exp=int(time.time()) + 100 * 365 * 86400),
}


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_bad_tokens_are_refused(kind: str, auth: AuthTokens) -> None:
    token = BAD_TOKENS[kind](auth)
    with pytest.raises(AuthError) as caught:
        authmod.verify_token(token, SETTINGS)
    assert caught.value.status == 401
    assert caught.value.message


def test_aud_as_a_list_naming_authenticated_is_accepted(auth: AuthTokens) -> None:
    """RFC 7519 lets aud be a list; a token for "authenticated" among others is one for us."""
    caller = authmod.verify_token(auth.token(STUDENT, aud=["authenticated", "other"]), SETTINGS)
    assert caller.user_id == STUDENT
    with pytest.raises(AuthError):
        authmod.verify_token(auth.token(STUDENT, aud=["anon", "other"]), SETTINGS)


def test_a_good_token_gives_the_caller(auth: AuthTokens) -> None:
    caller = authmod.verify_token(auth.token(STUDENT, "parent"), SETTINGS)
    assert caller.user_id == STUDENT
    assert caller.role == "parent"
    assert caller.is_anonymous is False
    assert caller.claims["sub"] == str(STUDENT)


def test_absent_role_is_student_and_user_metadata_grants_nothing(auth: AuthTokens) -> None:
    caller = authmod.verify_token(
        auth.token(STUDENT, None, user_metadata={"role": "admin"}), SETTINGS)
    assert caller.role == "student"
    assert not caller.is_admin


def test_anonymous_sign_in_is_a_student(auth: AuthTokens) -> None:
    caller = authmod.verify_token(auth.token(STUDENT, None, is_anonymous=True), SETTINGS)
    assert caller.role == "student"
    assert caller.is_anonymous is True


def test_small_clock_skew_is_tolerated(auth: AuthTokens) -> None:
    token = auth.token(STUDENT, exp=int(time.time()) - authmod.LEEWAY_SECONDS // 2)
    assert authmod.verify_token(token, SETTINGS).user_id == STUDENT


def test_issuer_is_required_when_supabase_url_is_set(auth: AuthTokens) -> None:
    settings = Settings(jwt_secret=TEST_JWT_SECRET, supabase_url=SUPABASE)
    good = auth.token(STUDENT, iss=f"{SUPABASE}/auth/v1")
    assert authmod.verify_token(good, settings).user_id == STUDENT
    for bad in (auth.token(STUDENT), auth.token(STUDENT, iss="https://evil.example/auth/v1")):
        with pytest.raises(AuthError):
            authmod.verify_token(bad, settings)


def test_no_secret_means_hs256_is_refused(auth: AuthTokens) -> None:
    with pytest.raises(AuthError) as caught:
        authmod.verify_token(auth.token(STUDENT), Settings())
    assert caught.value.status == 401


@pytest.mark.parametrize("header", ["Basic dXNlcjpwdw==", "Bearer", "Bearer    ", "token abc"])
def test_malformed_authorization_headers(header: str) -> None:
    with pytest.raises(AuthError):
        authmod.bearer_token(header)


def test_require_caller_rejects_unknown_roles() -> None:
    with pytest.raises(ValueError):
        require_caller("superuser")


# ------------------------------------------------------------- through Flask


@pytest.fixture
def routed(app: Flask) -> Iterator[FlaskClient]:
    """The app with a few routes guarded the way Waymark's blueprints guard theirs."""

    @app.get("/t/me")
    @require_caller()
    def me() -> Any:
        caller = current_caller()
        return jsonify(user=str(caller.user_id), role=caller.role)

    @app.get("/t/admin")
    @require_caller("admin")
    def admin_only() -> Any:
        return jsonify(secret="admin data")

    @app.get("/t/optional")
    def optional() -> Any:
        caller = current_caller(optional=True)
        return jsonify(user=str(caller.user_id) if caller else None)

    @app.get("/t/users/<uuid:user_id>")
    @require_caller()
    def user_data(user_id: uuid.UUID) -> Any:
        require_access_to(user_id)
        return jsonify(data=f"about {user_id}")

    yield app.test_client()


def test_no_token_is_401_json(routed: FlaskClient) -> None:
    answer = routed.get("/t/me")
    assert answer.status_code == 401
    assert answer.is_json and "error" in answer.get_json()
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_bad_tokens_are_401_over_http(routed: FlaskClient, auth: AuthTokens) -> None:
    for kind, make in BAD_TOKENS.items():
        answer = routed.get("/t/me", headers={"Authorization": f"Bearer {make(auth)}"})
        assert answer.status_code == 401, kind
        assert set(answer.get_json()) == {"error"}, kind


def test_good_token_passes(routed: FlaskClient, auth: AuthTokens) -> None:
    answer = routed.get("/t/me", headers=auth.header(STUDENT))
    assert answer.status_code == 200
    assert answer.get_json() == {"user": str(STUDENT), "role": "student"}


def test_wrong_role_is_403_without_data(routed: FlaskClient, auth: AuthTokens) -> None:
    for role in ("student", "parent"):
        answer = routed.get("/t/admin", headers=auth.header(STUDENT, role))
        assert answer.status_code == 403
        assert set(answer.get_json()) == {"error"}
        assert "admin data" not in answer.get_data(as_text=True)
    assert routed.get("/t/admin", headers=auth.header(STUDENT, "admin")).status_code == 200


def test_user_metadata_admin_is_still_403(routed: FlaskClient, auth: AuthTokens) -> None:
    headers = auth.header(STUDENT, None, user_metadata={"role": "admin"})
    assert routed.get("/t/admin", headers=headers).status_code == 403


def test_optional_caller(routed: FlaskClient, auth: AuthTokens) -> None:
    assert routed.get("/t/optional").get_json() == {"user": None}
    bad = {"Authorization": "Bearer garbage"}
    assert routed.get("/t/optional", headers=bad).get_json() == {"user": None}
    assert routed.get("/t/optional", headers=auth.header(STUDENT)).get_json() == {
        "user": str(STUDENT)}


def test_oversize_header_is_401(routed: FlaskClient) -> None:
    answer = routed.get("/t/me", headers={"Authorization": "Bearer " + "a" * 20_000})
    assert answer.status_code == 401


def test_another_users_object_is_403_unless_self_parent_or_admin(
        routed: FlaskClient, auth: AuthTokens, conn: Any) -> None:
    conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s)",
                 (PARENT, STUDENT))
    path = f"/t/users/{STUDENT}"
    assert routed.get(path, headers=auth.header(STUDENT)).status_code == 200
    assert routed.get(path, headers=auth.header(PARENT, "parent")).status_code == 200
    assert routed.get(path, headers=auth.header(OTHER, "admin")).status_code == 200
    for headers in (auth.header(OTHER), auth.header(OTHER, "parent"),
                    auth.header(PARENT, "student")):
        answer = routed.get(path, headers=headers)
        assert answer.status_code == 403
        assert str(STUDENT) not in answer.get_data(as_text=True)


# ------------------------------------------------------------ start-up check


def test_superuser_warning_outside_testing(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    db = Database(db_url, min_size=0, max_size=1)
    db.open(wait=True)
    try:
        with caplog.at_level(logging.WARNING, logger="waymark.security"):
            problems = security.check_connection_role(db, testing=False)
        assert any("superuser" in p for p in problems)
        assert any("superuser" in r.getMessage() for r in caplog.records)
        assert security.check_connection_role(db, testing=True) == []
    finally:
        db.close()


def test_no_warning_for_a_non_superuser_owner(db_url: str, conn: Any) -> None:
    name = f"wm_owner_{uuid.uuid4().hex[:8]}"
    conn.execute(f'CREATE ROLE "{name}" LOGIN BYPASSRLS')
    try:
        db = Database(make_conninfo(db_url, user=name), min_size=0, max_size=1)
        db.open(wait=True)
        try:
            report = security.connection_role(db)
            assert report.name == name and not report.superuser and report.bypass_rls
            assert security.role_problems(report, testing=False) == []
        finally:
            db.close()
    finally:
        conn.execute(f'DROP ROLE "{name}"')


def test_authenticated_with_bypassrls_is_reported() -> None:
    report = security.RoleReport(name="owner", superuser=False, bypass_rls=True,
                                 authenticated_bypasses=True)
    assert security.role_problems(report, testing=True) == [security.AUTHENTICATED_BYPASS_ERROR]


def start_app_outside_testing(app_config: dict[str, Any], caplog: pytest.LogCaptureFixture,
                              **config: Any) -> list[logging.LogRecord]:
    """Create the app as in production, wait for its start-up role check, return its logs."""
    import threading

    from backend import create_app

    app_config.update(TESTING=False, **config)
    with caplog.at_level(logging.WARNING, logger="waymark.security"):
        application = create_app(app_config)
        try:
            for thread in threading.enumerate():
                if thread.name == "waymark-role-check":
                    thread.join(15)
        finally:
            application.extensions["waymark"].close()
    return caplog.records


def test_create_app_outside_testing_warns_about_a_superuser(
        app_config: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    records = start_app_outside_testing(app_config, caplog)
    assert any("superuser" in r.getMessage() and r.levelno == logging.WARNING for r in records)


def test_the_embedded_local_server_started_by_serve_is_not_warned_about(
        app_config: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    # WAYMARK_EMBEDDED is what `waymark serve` passes its workers for the embedded server.
    records = start_app_outside_testing(app_config, caplog, WAYMARK_EMBEDDED=True)
    assert not any("superuser" in r.getMessage() for r in records)
