"""Process counters: each ingestion process's totals, upserted every few seconds, summed.

Gunicorn runs several workers, each with its own in-process writer; the JetStream mode runs
app nodes and ``waymark writer`` processes on several machines. A worker that answered
``/health`` with its own counters told a different story on every call; every process now
writes its counters to ``waymark.ingest_processes`` (a heartbeat) and ``/health`` sums the
processes heard from recently (:func:`summed`).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from backend.services.ingest.statements import QUERIES

#: seconds between two heartbeats of one process
BEAT_EVERY = 5.0
#: a process not heard from for this long is taken as gone (its totals leave the sum)
FRESH = timedelta(seconds=60)


class Heartbeat:
    """Writes one process's counters at most every :data:`BEAT_EVERY` seconds."""

    def __init__(self, role: str, stats: Callable[[], Mapping[str, Any]]) -> None:
        self.role = role
        self.stats = stats
        # one row per writer: a process may hold two (two apps), and a pid is reused
        self.process = f"{socket.gethostname()}:{os.getpid()}:{role}:{secrets.token_hex(3)}"
        self.started_at = datetime.now(UTC)
        self._last = 0.0

    def due(self) -> bool:
        """Whether a beat is due (cheap: callers ask on every loop)."""
        return time.monotonic() - self._last >= BEAT_EVERY

    def beat(self, conn: psycopg.Connection[Any], *, force: bool = False) -> None:
        """Upsert this process's counters (autocommit connection) if a beat is due."""
        if not force and not self.due():
            return
        self._last = time.monotonic()  # a failed beat waits for the next interval too
        conn.execute(QUERIES["beat_process"], {
            "process": self.process, "role": self.role, "started_at": self.started_at,
            "counters": json.dumps(self.stats(), default=str)})


def summed(conn: psycopg.Connection[Any], own: Heartbeat | None = None,
           own_stats: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The counters of every live process added up, numbers and nested ``dropped`` alike.

    ``own``'s stored row is replaced by ``own_stats`` (this process's counters now, not as
    of its last beat).
    """
    rows = conn.execute(QUERIES["live_processes"], {"fresh": FRESH}).fetchall()
    totals: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    roles: Counter[str] = Counter()
    for process, role, counters, _updated in rows:
        if own is not None and process == own.process:
            continue
        _add(totals, dropped, counters)
        roles[role] += 1
    if own is not None and own_stats is not None:
        _add(totals, dropped, own_stats)
        roles[own.role] += 1
    return {**totals, "dropped": dict(dropped), "processes": dict(roles)}


def _add(totals: Counter[str], dropped: Counter[str], counters: Mapping[str, Any]) -> None:
    for key, value in counters.items():
        if key == "dropped" and isinstance(value, Mapping):
            dropped.update({k: int(v) for k, v in value.items()})
        elif isinstance(value, int) and not isinstance(value, bool):
            totals[key] += value


def forget_quiet(conn: psycopg.Connection[Any], older_than: timedelta) -> int:
    """Delete the rows of processes gone quiet (``waymark purge``)."""
    return conn.execute(QUERIES["forget_quiet_processes"], {"older_than": older_than}).rowcount
