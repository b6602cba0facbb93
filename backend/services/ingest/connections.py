"""What every writer of the ingest pipeline shares about its database: the connection it
opens (autocommit, no server-side prepared statements: Supabase's pooler in transaction
mode), closing one that may be broken, and the backoff between retries while the database
is away. Used by the in-process writer, the JetStream publisher and ``waymark writer``."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import psycopg

BACKOFF_FIRST = 0.05
BACKOFF_CAP = 2.0


def connect(url: str, name: str = "waymark-writer") -> psycopg.Connection[Any]:
    """A writer's own connection (not the pool's: it must not wait behind analytics)."""
    return psycopg.connect(url, autocommit=True, prepare_threshold=None, connect_timeout=5,
                           application_name=name)


def close(conn: psycopg.Connection[Any] | None) -> None:
    """Close ``conn`` if there is one, quietly: it may already be broken."""
    if conn is not None:
        with contextlib.suppress(psycopg.Error, OSError):
            conn.close()


def backoff(attempt: int) -> float:
    """Seconds before retry ``attempt`` (0-based): capped exponential, jittered so writers
    that failed together do not retry together."""
    delay: float = min(BACKOFF_CAP, BACKOFF_FIRST * 2.0 ** attempt)
    return delay * (0.5 + random.random() / 2)  # noqa: S311 - backoff jitter, not a secret
