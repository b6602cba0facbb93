"""What every cron job shares: a non-blocking advisory lock so two runs never overlap."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from backend.db import Database
from backend.queries import FOUNDATION

LOCK_NAMESPACE = 0x57A1  # "waymark" jobs; the second key is derived from the job name


def lock_key(name: str) -> int:
    """A stable 32-bit key for a job name (the same in every process and release)."""
    return zlib.crc32(f"waymark:{name}".encode()) & 0x7FFFFFFF


@contextmanager
def job_lock(db: Database, name: str) -> Iterator[bool]:
    """Hold the job's advisory lock for the block; yields False when another run holds it.

    The lock lives on a connection of its own, held for the whole job, so the job's
    batches can commit on other connections without ever releasing it early.
    """
    with psycopg.connect(db.url, autocommit=True, prepare_threshold=None) as conn:
        keys = {"namespace": LOCK_NAMESPACE, "key": lock_key(name)}
        row = conn.execute(FOUNDATION["try_job_lock"], keys).fetchone()
        acquired = bool(row and row[0])
        try:
            yield acquired
        finally:
            if acquired:
                conn.execute(FOUNDATION["release_job_lock"], keys)
