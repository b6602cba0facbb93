"""Who is calling: Supabase-compatible access-token verification for the web layer.

A request carries ``Authorization: Bearer <JWT>``. :func:`verify_token` accepts only a
signed-in user's access token — HS256 with ``WAYMARK_JWT_SECRET``, or RS256/ES256 against
the JWKS of ``SUPABASE_URL`` — whose own ``role`` claim is ``authenticated`` and whose
``aud`` is ``authenticated`` (so Supabase's anon and service-role keys, valid JWTs too,
are refused). The application role comes from ``app_metadata.role`` (set by the server,
never from ``user_metadata``, which the user can edit). An anonymous sign-in
(``is_anonymous: true``) is always a student: it sees its own rows and nothing else.

The database has the last word: reads run through ``Database.as_user(caller.claims)``,
where row-level security decides the rows. See docs/access.md.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast, get_args, overload

import jwt
from flask import Flask, Response, g, jsonify, request

from backend.config import Settings
from backend.ids import canonical_uuid
from backend.queries import FOUNDATION
from backend.security import check_connection_role_soon
from backend.services.ingest.privacy_step import Verifier
from backend.state import WaymarkState, get_state

log = logging.getLogger("waymark.auth")

Role = Literal["student", "parent", "teacher", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
DEFAULT_ROLE: Role = "student"

#: The only audience and token role a user's access token may have.
AUDIENCE = "authenticated"
TOKEN_ROLE = "authenticated"
HMAC_ALGORITHMS = ("HS256",)
JWKS_ALGORITHMS = ("RS256", "ES256")
#: Clock skew tolerated on exp/nbf/iat, in seconds.
LEEWAY_SECONDS = 10
#: The longest a token may still be valid for. Supabase's last an hour and `waymark
#: dev-token`'s at most 30 days; a token valid for years is a forged or leaked one.
MAX_LIFETIME_SECONDS = 31 * 24 * 3600
#: Longest token (and Authorization header) accepted; Supabase tokens are ~1 KiB.
MAX_TOKEN_BYTES = 8 * 1024
#: How long fetched signing keys are trusted before they are fetched again.
JWKS_MAX_AGE_SECONDS = 600.0
#: Shortest time between two JWKS fetches (an unknown ``kid`` cannot cause a storm).
JWKS_MIN_REFRESH_SECONDS = 30.0
JWKS_PATH = "/auth/v1/.well-known/jwks.json"

_G_KEY = "_waymark_caller"
_NO_CALLER = object()

F = TypeVar("F", bound=Callable[..., Any])


class AuthError(Exception):
    """The caller is not signed in (401) or may not do this (403); ``message`` says which."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Caller:
    """A verified signed-in user: id, application role and the claims RLS reads."""

    user_id: uuid.UUID
    role: Role
    claims: dict[str, Any] = field(repr=False, compare=False, hash=False)
    is_anonymous: bool = False

    @property
    def is_admin(self) -> bool:
        """Whether this caller may see everything (admin-only endpoints)."""
        return self.role == "admin"


# --------------------------------------------------------------------------- JWKS


class JwksClient:
    """A JWKS fetched over HTTPS and cached: refetched when older than ``max_age``, and
    refreshed early at most once per ``min_refresh_interval`` when a token names an
    unknown ``kid`` (key rotation), so a flood of forged kids cannot cause a fetch storm."""

    def __init__(self, url: str, *, max_age: float = JWKS_MAX_AGE_SECONDS,
                 min_refresh_interval: float = JWKS_MIN_REFRESH_SECONDS,
                 timeout: float = 3.0, clock: Callable[[], float] | None = None) -> None:
        self.url = url
        self.max_age = max_age
        self.min_refresh_interval = min_refresh_interval
        self.timeout = timeout
        self._clock = clock or (lambda: time.monotonic())  # looked up per call: freezegun
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._failed_at: float | None = None
        self._kid_refreshed_at: float | None = None
        self.fetches = 0

    def signing_key(self, kid: str, algorithm: str) -> jwt.PyJWK:
        """The key named ``kid`` for ``algorithm``; raises AuthError(401) when there is none."""
        with self._lock:
            now = self._clock()
            if self._is_stale(now) and not self._backing_off(now):
                self._fetch(now)
            key = self._keys.get(kid)
            if key is None and self._may_refresh_for_kid(now):
                self._kid_refreshed_at = now
                self._fetch(now)
                key = self._keys.get(kid)
        if key is None:
            raise AuthError(401, "the token was signed with an unknown key; sign in again")
        if key.algorithm_name != algorithm:
            raise AuthError(401, "the token's algorithm does not match its signing key")
        return key

    def _is_stale(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self.max_age

    def _backing_off(self, now: float) -> bool:
        """A fetch failed moments ago: do not hammer a server that is down."""
        return self._failed_at is not None and now - self._failed_at < self.min_refresh_interval

    def _may_refresh_for_kid(self, now: float) -> bool:
        recent = (self._kid_refreshed_at is not None
                  and now - self._kid_refreshed_at < self.min_refresh_interval)
        return not recent and not self._backing_off(now)

    def _fetch(self, now: float) -> None:
        self.fetches += 1
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout) as answer:  # noqa: S310
                data = json.loads(answer.read(1024 * 1024))
            keyset = jwt.PyJWKSet.from_dict(data)
        except (OSError, ValueError, urllib.error.URLError, jwt.PyJWKSetError) as exc:
            log.warning("waymark: cannot fetch signing keys from %s: %s", self.url, exc)
            self._failed_at = now
            if self._is_stale(now):
                self._keys = {}  # never trust keys older than max_age
            return
        self._keys = {key.key_id: key for key in keyset.keys if key.key_id}
        self._fetched_at = now
        self._failed_at = None


_jwks_clients: dict[str, JwksClient] = {}
_jwks_lock = threading.Lock()


def jwks_url(supabase_url: str) -> str:
    """Where a Supabase project publishes its token-signing public keys."""
    return supabase_url.rstrip("/") + JWKS_PATH


def jwks_client_for(supabase_url: str) -> JwksClient:
    """The process-wide cached JWKS client of a Supabase project (one per URL)."""
    url = jwks_url(supabase_url)
    with _jwks_lock:
        client = _jwks_clients.get(url)
        if client is None:
            client = _jwks_clients[url] = JwksClient(url)
        return client


# ------------------------------------------------------------------ verification


def verify_token(token: str, settings: Settings, *, jwks: JwksClient | None = None) -> Caller:
    """Turn a bearer token into a Caller, or raise AuthError(401) saying what is wrong."""
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthError(401, "the access token is too large")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AuthError(401, "the access token is not a JWT") from None
    algorithm = header.get("alg")
    key: Any
    if algorithm in HMAC_ALGORITHMS and settings.jwt_secret:
        key = settings.jwt_secret
    elif algorithm in JWKS_ALGORITHMS and settings.supabase_url:
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError(401, "the token names no signing key (kid)")
        client = jwks if jwks is not None else jwks_client_for(settings.supabase_url)
        key = client.signing_key(kid, str(algorithm)).key
    else:
        raise AuthError(401, f"tokens signed with {algorithm!r} are not accepted here")
    claims = _decode(token, key, str(algorithm), settings)
    return caller_from_claims(claims)


def _decode(token: str, key: Any, algorithm: str, settings: Settings) -> dict[str, Any]:
    required = ["exp", "sub", "aud"]
    issuer = None
    if settings.supabase_url:
        issuer = settings.supabase_url.rstrip("/") + "/auth/v1"
        required.append("iss")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[algorithm], audience=AUDIENCE, issuer=issuer,
            leeway=LEEWAY_SECONDS, options={"require": required})
    except jwt.ExpiredSignatureError:
        raise AuthError(401, "the access token has expired; refresh the session") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(401, f"invalid access token: {exc}") from None
    return _checked_times(claims)


def _checked_times(claims: dict[str, Any]) -> dict[str, Any]:
    """What PyJWT lets through: ``exp`` as a string (``"1796474507"``) and an expiry
    centuries away. NumericDate is a number (RFC 7519), and no session lasts a year."""
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise AuthError(401, "invalid access token: exp must be a number of seconds")
    if exp > time.time() + MAX_LIFETIME_SECONDS:
        raise AuthError(401, "invalid access token: it expires more than 31 days from now")
    return claims


def caller_from_claims(claims: dict[str, Any]) -> Caller:
    """Check the claims of a verified token and read the caller's identity from them."""
    if claims.get("role") != TOKEN_ROLE:
        raise AuthError(401, "only a signed-in user's access token is accepted "
                             "(not the anon or service-role key)")
    try:
        user_id = canonical_uuid(claims["sub"])
    except (KeyError, ValueError):
        raise AuthError(401, "the token's subject (sub) is not a user id") from None
    app_metadata = claims.get("app_metadata") or {}
    if not isinstance(app_metadata, dict):
        raise AuthError(401, "the token's app_metadata is not an object")
    role = app_metadata.get("role") or DEFAULT_ROLE
    if role not in ROLES:
        raise AuthError(401, f"unknown role {role!r} in app_metadata; use one of {ROLES}")
    is_anonymous = claims.get("is_anonymous") is True
    if is_anonymous and role != "student":
        raise AuthError(401, "an anonymous sign-in cannot have the role " + repr(role))
    return Caller(user_id=user_id, role=cast(Role, role), claims=dict(claims),
                  is_anonymous=is_anonymous)


# ------------------------------------------------------------------- in requests


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header (None when there is no header)."""
    if header is None or not header.strip():
        return None
    if len(header) > MAX_TOKEN_BYTES + 16:
        raise AuthError(401, "the Authorization header is too large")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(401, "use 'Authorization: Bearer <access token>'")
    return token.strip()


@overload
def current_caller(optional: Literal[False] = ...) -> Caller: ...
@overload
def current_caller(optional: bool) -> Caller | None: ...


def current_caller(optional: bool = False) -> Caller | None:
    """The verified caller of this request (cached on ``g``).

    Without a valid token: AuthError(401), or None when ``optional`` (ingestion endpoints,
    where an invalid or missing token just means the event has no user).
    """
    cached: object = g.get(_G_KEY, None)
    if cached is None:
        try:
            cached = _caller_of_request()
        except AuthError as exc:
            if not optional:
                raise
            log.debug("waymark: ignoring an invalid optional token: %s", exc.message)
            cached = _NO_CALLER
        setattr(g, _G_KEY, cached)
    if cached is _NO_CALLER:
        if optional:
            return None
        return _caller_of_request()  # raises the precise 401
    return cast(Caller, cached)


def known_caller(request_globals: Any = None) -> Caller | None:
    """The caller this request already verified, if any (the middleware's user; never verifies).

    ``request_globals`` is ``g``'s real object when the caller already holds it: the
    middleware's hot path skips the proxy lookup.
    """
    cached: object = (request_globals if request_globals is not None else g).get(_G_KEY, None)
    return cached if isinstance(cached, Caller) else None


def _caller_of_request() -> Caller:
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        raise AuthError(401, "sign in: this endpoint needs 'Authorization: Bearer <token>'")
    return verify_token(token, get_state().settings)


def require_caller(*roles: str) -> Callable[[F], F]:
    """Route decorator: 401 without a valid token, 403 when the caller's role is not listed."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; use some of {ROLES}")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = current_caller()
            if roles and caller.role not in roles:
                raise AuthError(403, "this endpoint is for " + " or ".join(roles) + " accounts")
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def require_access_to(user_id: uuid.UUID) -> Caller:
    """403 unless the caller is that user, an admin, or may see that student (a linked
    parent, a teacher of their class): the database's own helper decides, as the policies
    do, so the web layer and RLS cannot disagree (no data leaks either way)."""
    caller = current_caller()
    if caller.user_id == user_id or caller.is_admin:
        return caller
    if caller.role in ("parent", "teacher"):
        with get_state().reads.as_user(caller.claims) as conn:
            row = conn.execute(FOUNDATION["may_see_student"], {"student_id": user_id}).fetchone()
        if row is not None and row[0]:
            return caller
    raise AuthError(403, "you may not see this user's data")


def auth_error_response(exc: AuthError) -> Response:
    """Answer an AuthError as JSON ``{"error": ...}`` with its status (and a Bearer challenge)."""
    response = jsonify({"error": exc.message})
    response.status_code = exc.status
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="waymark", error="invalid_token"'
    return response


def install_error_handlers(app: Flask) -> None:
    """Make every AuthError raised in a view answer as JSON instead of an HTML error page."""
    app.register_error_handler(AuthError, auth_error_response)


def install(app: Flask, state: WaymarkState) -> None:
    """Wire access control into an app: JSON auth errors and the start-up role check."""
    install_error_handlers(app)
    embedded = state.settings.embedded  # local only, superuser by design
    check_connection_role_soon(state.db, testing=bool(app.testing) or embedded)


def token_verifier(settings: Settings) -> Verifier:
    """What the writer's privacy step checks tokens with: (user id or None, valid until)."""

    def verify(token: str) -> tuple[uuid.UUID | None, float]:
        try:
            caller = verify_token(token, settings)
        except AuthError:
            return None, time.time() + 60.0
        expires = caller.claims.get("exp")
        until = float(expires) if isinstance(expires, int | float) else time.time() + 60.0
        return caller.user_id, until

    return verify
