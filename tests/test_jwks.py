"""Asymmetric tokens against a JWKS served by a local HTTP server (RS256 and ES256).

The server counts its requests, which proves the caching (≤ 10 minutes), the single
refresh on an unknown ``kid`` and the absence of a refresh storm.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from freezegun import freeze_time
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from backend import auth as authmod
from backend.auth import AuthError, verify_token
from backend.config import Settings

USER = uuid.UUID("12345678-0000-4000-8000-000000000001")


class Key:
    """A locally generated signing key and its public JWK."""

    def __init__(self, kid: str, algorithm: str) -> None:
        self.kid = kid
        self.algorithm = algorithm
        if algorithm == "RS256":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk: dict[str, Any] = {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}

    def sign(self, claims: dict[str, Any], *, kid: str | None = None,
             algorithm: str | None = None) -> str:
        return jwt.encode(claims, self.private, algorithm=algorithm or self.algorithm,
                          headers={"kid": kid or self.kid})


RSA_KEY = Key("rsa-1", "RS256")
EC_KEY = Key("ec-1", "ES256")


class JwksServer:
    """``/auth/v1/.well-known/jwks.json`` on 127.0.0.1, port chosen by the OS."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = [RSA_KEY.jwk, EC_KEY.jwk]
        self.requests = 0
        self.up = True
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                if not outer.up or self.path != authmod.JWKS_PATH:
                    self.send_error(503 if not outer.up else 404)
                    return
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> JwksServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[JwksServer]:
    monkeypatch.setattr(authmod, "_jwks_clients", {})  # a fresh process-wide cache
    with JwksServer() as running:
        yield running


def _settings(server: JwksServer) -> Settings:
    return Settings(supabase_url=server.url)  # no HS256 secret: asymmetric tokens only


def _claims(server: JwksServer, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": str(USER), "aud": "authenticated", "role": "authenticated",
                              "iss": f"{server.url}/auth/v1", "iat": now, "exp": now + 3600,
                              "app_metadata": {"role": "parent"}}
    claims.update(extra)
    return claims


@pytest.mark.parametrize("key", [RSA_KEY, EC_KEY], ids=["RS256", "ES256"])
def test_asymmetric_tokens_verify_and_the_keys_are_fetched_once(server: JwksServer,
                                                               key: Key) -> None:
    settings = _settings(server)
    for _ in range(20):
        caller = verify_token(key.sign(_claims(server)), settings)
        assert (caller.user_id, caller.role) == (USER, "parent")
    assert server.requests == 1


def test_keys_are_cached_for_at_most_ten_minutes(server: JwksServer) -> None:
    settings = _settings(server)
    with freeze_time("2026-11-01 12:00:00") as clock:
        verify_token(RSA_KEY.sign(_claims(server)), settings)
        clock.tick(599)
        verify_token(EC_KEY.sign(_claims(server)), settings)
        assert server.requests == 1
        clock.tick(2)  # 601 s after the fetch
        verify_token(RSA_KEY.sign(_claims(server)), settings)
        assert server.requests == 2


def test_unknown_kid_refreshes_once_then_401_without_a_storm(server: JwksServer) -> None:
    settings = _settings(server)
    with freeze_time("2026-11-01 12:00:00") as clock:
        verify_token(RSA_KEY.sign(_claims(server)), settings)
        assert server.requests == 1
        with pytest.raises(AuthError) as caught:
            verify_token(RSA_KEY.sign(_claims(server), kid="rotated-away"), settings)
        assert caught.value.status == 401
        assert server.requests == 2  # exactly one refresh
        for n in range(50):  # a flood of forged kids: no further fetches
            with pytest.raises(AuthError):
                verify_token(RSA_KEY.sign(_claims(server), kid=f"forged-{n}"), settings)
        assert server.requests == 2
        # known keys keep working meanwhile, from the cache
        verify_token(EC_KEY.sign(_claims(server)), settings)
        assert server.requests == 2
        clock.tick(authmod.JWKS_MIN_REFRESH_SECONDS + 1)
        with pytest.raises(AuthError):
            verify_token(RSA_KEY.sign(_claims(server), kid="forged-again"), settings)
        assert server.requests == 3


def test_a_rotated_in_key_is_picked_up_by_the_refresh(server: JwksServer) -> None:
    settings = _settings(server)
    verify_token(RSA_KEY.sign(_claims(server)), settings)
    new_key = Key("ec-2", "ES256")
    server.keys = [*server.keys, new_key.jwk]
    caller = verify_token(new_key.sign(_claims(server)), settings)
    assert caller.user_id == USER
    assert server.requests == 2


def test_concurrent_unknown_kids_cause_one_refresh(server: JwksServer) -> None:
    settings = _settings(server)
    verify_token(RSA_KEY.sign(_claims(server)), settings)
    tokens = [RSA_KEY.sign(_claims(server), kid=f"nope-{n}") for n in range(16)]
    failures: list[int] = []

    def attempt(token: str) -> None:
        try:
            verify_token(token, settings)
        except AuthError as exc:
            failures.append(exc.status)

    threads = [threading.Thread(target=attempt, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert failures == [401] * 16
    assert server.requests == 2


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_signed_with(secret: bytes, claims: dict[str, Any], kid: str) -> str:
    """The classic key-confusion forgery: HMAC keyed with the server's public key."""
    signing_input = ".".join([_b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()),
                              _b64(json.dumps(claims).encode())])
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@pytest.mark.parametrize("case", ["alg mismatch", "hs256 with public key", "no kid",
                                  "no iss", "wrong iss", "aud anon", "service role",
                                  "signed by a stranger"])
def test_bad_asymmetric_tokens(server: JwksServer, case: str) -> None:
    settings = _settings(server)
    claims = _claims(server)
    stranger = Key("rsa-1", "RS256")  # same kid, different key
    if case == "alg mismatch":
        token = EC_KEY.sign(claims, kid=RSA_KEY.kid)  # ES256 header, RSA key's kid
    elif case == "hs256 with public key":
        token = _hs256_signed_with(RSA_KEY.private.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo), claims, RSA_KEY.kid)
    elif case == "no kid":
        token = jwt.encode(claims, RSA_KEY.private, algorithm="RS256")
    elif case == "no iss":
        token = RSA_KEY.sign({k: v for k, v in claims.items() if k != "iss"})
    elif case == "wrong iss":
        token = RSA_KEY.sign({**claims, "iss": "https://evil.example/auth/v1"})
    elif case == "aud anon":
        token = RSA_KEY.sign({**claims, "aud": "anon"})
    elif case == "service role":
        token = RSA_KEY.sign({**claims, "role": "service_role"})
    else:
        token = stranger.sign(claims)
    with pytest.raises(AuthError) as caught:
        verify_token(token, settings)
    assert caught.value.status == 401


def test_unreachable_jwks_is_401_and_retried_at_a_bounded_rate(server: JwksServer) -> None:
    settings = _settings(server)
    server.up = False
    with freeze_time("2026-11-01 12:00:00") as clock:
        for _ in range(10):
            with pytest.raises(AuthError) as caught:
                verify_token(RSA_KEY.sign(_claims(server)), settings)
            assert caught.value.status == 401
        assert server.requests == 1
        server.up = True
        clock.tick(authmod.JWKS_MIN_REFRESH_SECONDS + 1)
        assert verify_token(RSA_KEY.sign(_claims(server)), settings).user_id == USER
        assert server.requests == 2


def test_jwks_tokens_over_http(server: JwksServer, app_config: dict[str, Any]) -> None:
    from backend import create_app
    from backend.auth import current_caller, require_caller

    app_config["WAYMARK_SUPABASE_URL"] = server.url
    application = create_app(app_config)
    try:
        @application.get("/t/who")
        @require_caller()
        def who() -> dict[str, str]:
            return {"user": str(current_caller().user_id)}

        client = application.test_client()
        good = client.get("/t/who", headers={
            "Authorization": f"Bearer {EC_KEY.sign(_claims(server))}"})
        assert good.status_code == 200 and good.get_json() == {"user": str(USER)}
        bad = client.get("/t/who", headers={
            "Authorization": f"Bearer {EC_KEY.sign(_claims(server), kid='unknown')}"})
        assert bad.status_code == 401 and set(bad.get_json()) == {"error"}
    finally:
        application.extensions["waymark"].close()
