"""Waymark's settings: read once, from the host app's config with the environment as fallback.

Every knob (README "Configuration") lives here and nowhere else. A host application may set
any of them in ``app.config`` under its ``WAYMARK_`` name (``WAYMARK_DATABASE_URL``,
``WAYMARK_JWT_SECRET`` …); the process environment is the fallback, and an unset
value means the documented default below.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A setting has a value Waymark cannot work with; the message says which and why."""


# ---- alerts and digests (docs/alerts.md) -------------------------------------------


@dataclass(frozen=True)
class AlertSettings:
    """Where `waymark alerts` and `waymark digest` send, and when a score is a crossing."""

    webhook_url: str | None = None
    webhook_secret: str | None = None
    smtp_url: str | None = None
    sender: str = "Waymark <waymark@localhost>"
    threshold: float = 0.8
    admins: tuple[str, ...] = ()
    address_view: str | None = None
    address_url: str | None = None
    student_url: str = "http://127.0.0.1:5000/dashboard#student={student_id}"
    max_attempts: int = 5
    retry_base_seconds: float = 2.0
    timeout_seconds: float = 10.0

    @classmethod
    def load(cls, get: Any) -> AlertSettings:
        """Read the WAYMARK_ALERT_* settings and WAYMARK_SMTP_URL through ``get``."""
        d = cls()
        threshold = _float(get("ALERT_THRESHOLD"), "WAYMARK_ALERT_THRESHOLD", d.threshold)
        if not 0.0 < threshold <= 1.0:
            raise ConfigError("WAYMARK_ALERT_THRESHOLD must be in (0, 1]")
        if get("ALERT_WEBHOOK_URL") and not get("ALERT_WEBHOOK_SECRET"):
            raise ConfigError("WAYMARK_ALERT_WEBHOOK_URL needs WAYMARK_ALERT_WEBHOOK_SECRET "
                              "(receivers verify the X-Waymark-Signature with it)")
        webhook = _str_or_none(get("ALERT_WEBHOOK_URL"))
        if webhook and not webhook.startswith(("http://", "https://")):
            raise ConfigError("WAYMARK_ALERT_WEBHOOK_URL must be an http:// or https:// URL")
        return cls(
            webhook_url=webhook,
            webhook_secret=_str_or_none(get("ALERT_WEBHOOK_SECRET")),
            smtp_url=_str_or_none(get("SMTP_URL")),
            sender=_str_or_none(get("ALERT_FROM")) or d.sender,
            threshold=threshold,
            admins=_list(get("ALERT_ADMINS")),
            address_view=_str_or_none(get("ALERT_ADDRESS_VIEW")),
            address_url=_str_or_none(get("ALERT_ADDRESS_URL")),
            student_url=_str_or_none(get("ALERT_STUDENT_URL")) or d.student_url,
            max_attempts=_int(get("ALERT_MAX_ATTEMPTS"), "WAYMARK_ALERT_MAX_ATTEMPTS",
                              d.max_attempts, minimum=1),
            retry_base_seconds=_float(get("ALERT_RETRY_SECONDS"), "WAYMARK_ALERT_RETRY_SECONDS",
                                      d.retry_base_seconds),
            timeout_seconds=_float(get("ALERT_TIMEOUT"), "WAYMARK_ALERT_TIMEOUT",
                                   d.timeout_seconds),
        )


# ---- xAPI (docs/exports.md "xAPI") ------------------------------------------------------


@dataclass(frozen=True)
class XapiSettings:
    """Where `waymark xapi-sync` sends statements, and as which platform."""

    #: the LRS's xAPI base (``…/xAPI``; statements go to ``<endpoint>/statements``)
    endpoint: str | None = None
    #: the ``Authorization`` header: ``user:password`` given becomes Basic; ``Basic …`` or
    #: ``Bearer …`` is sent as it is
    authorization: str | None = None
    #: the platform's home page: the actor accounts' ``homePage`` and the activities' base
    #: (unset: the first of WAYMARK_ALLOWED_ORIGINS)
    home_page: str | None = None
    max_attempts: int = 5
    retry_base_seconds: float = 1.0
    timeout_seconds: float = 30.0

    @classmethod
    def load(cls, get: Any, allowed_origins: tuple[str, ...]) -> XapiSettings:
        """Read the WAYMARK_XAPI_* settings through ``get``."""
        d = cls()
        endpoint = _str_or_none(get("XAPI_ENDPOINT"))
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise ConfigError("WAYMARK_XAPI_ENDPOINT must be an http:// or https:// URL")
        home = _str_or_none(get("XAPI_HOME_PAGE")) or next(iter(allowed_origins), None)
        if home and not home.startswith(("http://", "https://")):
            raise ConfigError("WAYMARK_XAPI_HOME_PAGE must be an http:// or https:// URL")
        return cls(
            endpoint=endpoint.rstrip("/") if endpoint else None,
            authorization=_authorization(_str_or_none(get("XAPI_AUTH"))),
            home_page=home.rstrip("/") if home else None,
            max_attempts=_int(get("XAPI_MAX_ATTEMPTS"), "WAYMARK_XAPI_MAX_ATTEMPTS",
                              d.max_attempts, minimum=1),
            retry_base_seconds=_float(get("XAPI_RETRY_SECONDS"), "WAYMARK_XAPI_RETRY_SECONDS",
                                      d.retry_base_seconds),
            timeout_seconds=_float(get("XAPI_TIMEOUT"), "WAYMARK_XAPI_TIMEOUT",
                                   d.timeout_seconds),
        )


def _authorization(value: str | None) -> str | None:
    if value is None or value.startswith(("Basic ", "Bearer ")):
        return value
    if ":" not in value:
        raise ConfigError("WAYMARK_XAPI_AUTH must be user:password, 'Basic …' or 'Bearer …'")
    return "Basic " + base64.b64encode(value.encode()).decode()


# ---- settings -------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """All of Waymark's configuration, validated; see README "Configuration"."""

    database_url: str | None = None
    data_dir: Path = Path(".waymark")
    jwt_secret: str | None = None
    supabase_url: str | None = None
    salt_period: str = "day"
    anonymize_after_days: int = 90
    delete_after_days: int = 730
    collect_retention_days: int = 30
    #: "commit": ingestion answers 202 once its events are committed (a crash loses
    #: nothing); "queued": once they are in the in-process queue (at-most-once under crash).
    ack: str = "commit"
    #: How long an ingestion request waits for its commit before answering 503.
    ack_timeout: float = 5.0
    #: Seconds an ingestion request's body may take to arrive before it is answered 408
    #: and its connection closed (a slow upload must not keep a server thread).
    body_read_timeout: float = 10.0
    #: A streaming replica for the analytics reads (None: read from the primary).
    read_database_url: str | None = None
    #: Class aggregates describing fewer students than this are suppressed for teachers.
    min_group_size: int = 5
    allowed_origins: tuple[str, ...] = ()
    trusted_proxies: int = 0
    queue_size: int = 10_000
    dead_letter_cap: int = 10_000
    queue_bytes: int = 64 * 1024 * 1024
    #: The JetStream mode's servers (WAYMARK_QUEUE_URL=nats://a:4222,nats://b:4222); empty:
    #: the in-process queue (docs/ingestion.md "Two modes").
    queue_urls: tuple[str, ...] = ()
    #: The stream's name and bounds: a full stream answers 503 (discard new), never drops
    #: what it holds; what is older than max_age is removed by the server (docs/ingestion.md).
    stream_name: str = "WAYMARK_EVENTS"
    stream_max_bytes: int = 1024 * 1024 * 1024
    stream_max_age_hours: float = 7 * 24
    stream_replicas: int = 1
    batch_size: int = 500
    flush_interval: float = 0.5
    pool_min_size: int = 1
    pool_max_size: int = 10
    pii_keys: tuple[str, ...] = ("email", "name", "first_name", "last_name", "phone", "address")
    dev_mode: bool = False
    embedded: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    xapi: XapiSettings = field(default_factory=XapiSettings)

    @classmethod
    def load(cls, config: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
        """Build settings from a Flask config mapping, falling back to the environment."""

        def get(name: str, *env_names: str) -> Any:
            key = f"WAYMARK_{name}"
            if config.get(key) is not None:
                return config[key]
            for env_name in (key, *env_names):
                value = environ.get(env_name)
                if value not in (None, ""):
                    return value
            return None

        defaults = cls()
        salt_period = str(get("SALT_PERIOD") or defaults.salt_period).lower()
        ack = str(get("ACK") or defaults.ack).lower()
        if ack not in ("commit", "queued"):
            raise ConfigError(f"WAYMARK_ACK must be 'commit' or 'queued', not {ack!r}")
        if salt_period not in ("day", "month"):
            raise ConfigError(
                f"WAYMARK_SALT_PERIOD must be 'day' or 'month', not {salt_period!r}"
            )
        anonymize = _int(get("ANONYMIZE_AFTER_DAYS"), "WAYMARK_ANONYMIZE_AFTER_DAYS",
                         defaults.anonymize_after_days, minimum=1)
        delete = _int(get("DELETE_AFTER_DAYS"), "WAYMARK_DELETE_AFTER_DAYS",
                      defaults.delete_after_days, minimum=1)
        if delete < anonymize:
            raise ConfigError(
                "WAYMARK_DELETE_AFTER_DAYS must not be shorter than WAYMARK_ANONYMIZE_AFTER_DAYS"
            )
        jwt_secret = _str_or_none(get("JWT_SECRET", "SUPABASE_JWT_SECRET"))
        if jwt_secret is not None and len(jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"WAYMARK_JWT_SECRET / SUPABASE_JWT_SECRET must be at least {MIN_SECRET_BYTES} "
                "bytes (HS256 with a shorter key can be brute-forced); Supabase's is longer")
        database_url = get("DATABASE_URL", "DATABASE_URL")
        allowed_origins = _list(get("ALLOWED_ORIGINS"))
        extra = {**{k: v for k, v in environ.items() if k.startswith("WAYMARK_RISK_")},
                 **{k: v for k, v in config.items() if str(k).startswith("WAYMARK_")}}
        return cls(
            database_url=str(database_url) if database_url else None,
            data_dir=Path(get("DATA_DIR") or defaults.data_dir),
            jwt_secret=jwt_secret,
            supabase_url=_str_or_none(get("SUPABASE_URL", "SUPABASE_URL")),
            salt_period=salt_period,
            anonymize_after_days=anonymize,
            read_database_url=_str_or_none(get("READ_DATABASE_URL")),
            ack=ack,
            ack_timeout=max(0.1, _float(get("ACK_TIMEOUT"), "WAYMARK_ACK_TIMEOUT",
                                        defaults.ack_timeout)),
            body_read_timeout=_float(get("BODY_READ_TIMEOUT"), "WAYMARK_BODY_READ_TIMEOUT",
                                     defaults.body_read_timeout),
            min_group_size=_int(get("MIN_GROUP_SIZE"), "WAYMARK_MIN_GROUP_SIZE",
                                defaults.min_group_size, minimum=1),
            delete_after_days=delete,
            collect_retention_days=_int(get("COLLECT_RETENTION_DAYS"),
                                        "WAYMARK_COLLECT_RETENTION_DAYS",
                                        defaults.collect_retention_days, minimum=1),
            allowed_origins=allowed_origins,
            trusted_proxies=_int(get("TRUSTED_PROXIES"), "WAYMARK_TRUSTED_PROXIES",
                                 defaults.trusted_proxies, minimum=0),
            queue_size=_int(get("QUEUE_SIZE"), "WAYMARK_QUEUE_SIZE", defaults.queue_size,
                            minimum=1),
            queue_bytes=_int(get("QUEUE_BYTES"), "WAYMARK_QUEUE_BYTES", defaults.queue_bytes,
                             minimum=0),
            queue_urls=_queue_urls(get("QUEUE_URL")),
            stream_name=_stream_name(get("STREAM_NAME") or defaults.stream_name),
            stream_max_bytes=_int(get("STREAM_MAX_BYTES"), "WAYMARK_STREAM_MAX_BYTES",
                                  defaults.stream_max_bytes, minimum=1024 * 1024),
            stream_max_age_hours=_float(get("STREAM_MAX_AGE_HOURS"),
                                        "WAYMARK_STREAM_MAX_AGE_HOURS",
                                        defaults.stream_max_age_hours),
            stream_replicas=_int(get("STREAM_REPLICAS"), "WAYMARK_STREAM_REPLICAS",
                                 defaults.stream_replicas, minimum=1),
            dead_letter_cap=_int(get("DEAD_LETTER_CAP"), "WAYMARK_DEAD_LETTER_CAP",
                                 defaults.dead_letter_cap, minimum=0),
            batch_size=_int(get("BATCH_SIZE"), "WAYMARK_BATCH_SIZE", defaults.batch_size,
                            minimum=1),
            flush_interval=_float(get("FLUSH_INTERVAL"), "WAYMARK_FLUSH_INTERVAL",
                                  defaults.flush_interval),
            pool_min_size=_int(get("POOL_MIN_SIZE"), "WAYMARK_POOL_MIN_SIZE",
                               defaults.pool_min_size, minimum=0),
            pool_max_size=_int(get("POOL_MAX_SIZE"), "WAYMARK_POOL_MAX_SIZE",
                               defaults.pool_max_size, minimum=1),
            pii_keys=_list(get("PII_KEYS")) or defaults.pii_keys,
            # On for a local install with nothing configured (with_dev_secret), or by choice.
            dev_mode=_flag(get("DEV_MODE")),
            # Set by `waymark serve` for its workers when it started the embedded server.
            embedded=bool(config.get("WAYMARK_EMBEDDED")) or database_url is None,
            extra=extra,
            alerts=AlertSettings.load(get),
            xapi=XapiSettings.load(get, allowed_origins),
        )


def _queue_urls(value: Any) -> tuple[str, ...]:
    """``nats://host:4222[,host2:4222,…]``: every server of one cluster, each a nats:// URL."""
    urls = []
    for part in _list(value):
        url = part if "://" in part else f"nats://{part}"
        if not url.startswith(("nats://", "tls://")):
            raise ConfigError(f"WAYMARK_QUEUE_URL: {part!r} is not a nats:// URL")
        urls.append(url)
    return tuple(urls)


def _stream_name(value: Any) -> str:
    name = str(value)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise ConfigError("WAYMARK_STREAM_NAME: letters, digits, '_' and '-' only (≤ 64)")
    return name


DEV_SECRET_FILE = "dev-jwt-secret"
MIN_SECRET_BYTES = 32


def with_dev_secret(settings: Settings) -> Settings:
    """Give a local, unconfigured install (embedded database, no secret) a JWT secret of its own.

    ``make run`` must work with nothing configured, and the analytics API needs tokens:
    the secret is random per install, kept in ``WAYMARK_DATA_DIR`` (mode 0600), and
    ``waymark dev-token`` mints tokens with it. It never applies once ``DATABASE_URL``,
    a JWT secret or ``SUPABASE_URL`` is configured.
    """
    if settings.jwt_secret or settings.database_url or settings.supabase_url:
        return settings
    path = settings.data_dir / DEV_SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return replace(settings, jwt_secret=path.read_text().strip(), dev_mode=True)


def _flag(value: Any) -> bool:
    """A yes/no setting: 1/true/yes/on (any case) is yes; unset or anything else is no."""
    return str(value).strip().lower() in ("1", "true", "yes", "on") if value is not None else False


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _int(value: Any, name: str, default: int, *, minimum: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {number}")
    return number


def _float(value: Any, name: str, default: float) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, not {value!r}") from None
    if not number > 0:
        raise ConfigError(f"{name} must be positive, not {number}")
    return number


def _list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(part.strip() for part in str(value).split(",") if part.strip())
