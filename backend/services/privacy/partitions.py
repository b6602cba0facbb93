"""Retention on the week partitions of ``user_activity_events`` (sql/0152).

The events table is partitioned by ``occurred_at``, one partition per ISO week (Monday
00:00 UTC to the next), so the nightly jobs work on whole weeks instead of rows:

* purge **drops** a partition whose week is wholly past the deletion age: a catalog
  change, no DELETE per row, no dead rows for vacuum (an anonymized week straddling the
  cut-off waits for that drop; one never anonymized is deleted row by row meanwhile);
* anonymize **rewrites** a partition as soon as its week *begins* before the
  anonymization cut-off: one ``INSERT … SELECT`` of the anonymized rows into a new table,
  indexed freshly packed, then swapped in for the old one in a short transaction. The
  week's later days are anonymized up to six days early, never late: no event is kept
  linked to a person past the age, and no row is rewritten twice.

The legacy table of an install migrated in place and the default partition keep the
row-by-row batches of ``retention``. Both jobs hold one advisory lock while they work on the events, so a purge
never deletes from a partition being rewritten.

A rewrite reads its partition in one snapshot and must not bring back what changed since:
forget deletes and redacts stored events. Each of forget's transactions bumps
``waymark.event_edits`` first; the swap reads it ``FOR SHARE`` (so no forget can commit in
between) and swaps only if it is what the snapshot saw, else it drops the copy and the
partition waits for the next run. A week that may still receive late events (it ended
less than ``clock.MAX_PAST`` ago, which only a short anonymization age reaches) is never
rewritten: an insert after the snapshot would be lost in the swap; it is anonymized row
by row instead.

The swap's DETACH and a DROP lock the parent ACCESS EXCLUSIVE for a moment; with
``lock_timeout`` they give way to a long-running query and retry, rather than making
inserts queue behind them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import psycopg
from psycopg import errors, sql

from backend.clock import MAX_PAST
from backend.db import Database
from backend.services.privacy import QUERIES

log = logging.getLogger("waymark.partitions")

#: anonymize and purge take turns on the events (arbitrary constant: "waymark partitions").
MAINTENANCE_LOCK_KEY = 0x57A1_0152
#: how long a DETACH or DROP may wait for the parent's lock before it gives way.
LOCK_TIMEOUT = "2s"
LOCK_ATTEMPTS = 5
REWRITE_SUFFIX = "_rw"


@dataclass(frozen=True)
class Partition:
    """One partition of the events and what retention already did to it."""

    name: str
    from_at: datetime | None
    to_at: datetime | None
    anonymized_at: datetime | None
    collect_purged_at: datetime | None
    is_default: bool

    @property
    def is_week(self) -> bool:
        """A registered, bounded partition (a week), not the default or the legacy table."""
        return self.from_at is not None and self.to_at is not None and not self.is_default

    def closed(self, now: datetime) -> bool:
        """No event can arrive for this partition any more: ingestion refuses events older
        than MAX_PAST (and a day more for the clock's sake)."""
        return self.to_at is not None and self.to_at <= now - MAX_PAST - timedelta(days=1)

    def before(self, cutoff: datetime) -> bool:
        """Every row of this partition is older than ``cutoff``."""
        return self.to_at is not None and self.to_at <= cutoff

    def may_hold_before(self, cutoff: datetime) -> bool:
        """Some row of this partition may be older than ``cutoff``."""
        return self.from_at is None or self.from_at < cutoff

    @property
    def table(self) -> sql.Identifier:
        return sql.Identifier("public", self.name)


def partitions(db: Database) -> list[Partition]:
    """Every partition of the events, oldest first (unbounded ones first)."""
    rows = db.fetch_all(QUERIES["event_partitions"])
    return [Partition(r["name"], _finite(r["from_at"]), _finite(r["to_at"]), r["anonymized_at"],
                      r["collect_purged_at"], bool(r["is_default"])) for r in rows]


def _finite(value: Any) -> datetime | None:
    """psycopg reads ``-infinity`` as ``datetime.min``: treat it as "no lower bound"."""
    if value is None or value.year == 1:
        return None
    return value  # type: ignore[no-any-return]


@contextmanager
def maintenance_lock(db: Database) -> Iterator[None]:
    """Anonymize's rewrites and purge's deletes on the events take turns (session lock)."""
    with db.connection() as conn:
        conn.autocommit = True
        conn.execute(QUERIES["partition_maintenance_lock"], {"key": MAINTENANCE_LOCK_KEY})
        try:
            yield
        finally:
            conn.execute(QUERIES["partition_maintenance_unlock"], {"key": MAINTENANCE_LOCK_KEY})
            conn.autocommit = False


def _statement(query: str, **identifiers: sql.Composable) -> sql.Composed:
    return sql.SQL(QUERIES[query]).format(**identifiers)


def drop_expired(db: Database, cutoff: datetime) -> tuple[int, list[str]]:
    """Drop every week partition wholly older than ``cutoff``; returns (rows, names).

    The rows are counted before the drop, for the audit row (a count, not the rows)."""
    rows = 0
    dropped: list[str] = []
    for part in partitions(db):
        if not (part.is_week and part.before(cutoff)):
            continue
        with db.connection() as conn:
            count = _first(conn.execute(_statement("count_rows", table=part.table)).fetchone())
        if _with_lock_timeout(db, partial(_drop, part=part)):
            rows += int(count)
            dropped.append(part.name)
    return rows, dropped


def _drop(conn: psycopg.Connection[Any], *, part: Partition) -> bool:
    conn.execute(_statement("drop_partition", table=part.table))
    conn.execute(QUERIES["unregister_partition"], {"name": part.name})
    return True


def _with_lock_timeout(db: Database,
                       change: Callable[[psycopg.Connection[Any]], bool]) -> bool:
    """Run ``change(conn)`` in a transaction that waits at most LOCK_TIMEOUT for each lock;
    retried a few times, then left for the next run. True when the change was made."""
    for attempt in range(LOCK_ATTEMPTS):
        try:
            with db.connection() as conn:
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
                return change(conn)
        except errors.LockNotAvailable:
            log.info("partition change waited %s for a lock; retrying", LOCK_TIMEOUT)
            time.sleep(0.5 * (attempt + 1))
    return False


def rewrite_anonymized(db: Database, part: Partition, *, now: datetime,
                       pii_keys: Sequence[str], pii_hint: str) -> int | None:
    """Replace a whole week with its anonymized copy; returns the rows, or None when a
    forget changed the week meanwhile (or the lock never came): then it is left as it was
    and the next run tries again."""
    assert part.from_at is not None and part.to_at is not None
    target = sql.Identifier("public", part.name + REWRITE_SUFFIX)
    with db.connection() as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        seen = _epoch(conn, "edit_epoch")
        conn.execute(_statement("drop_table_if_exists", table=target))
        conn.execute(_statement("create_rewrite_table", target=target))
        copied = conn.execute(_statement("rewrite_anonymized_partition", target=target,
                                         source=part.table),
                              {"now": now, "pii_keys": list(pii_keys),
                               "pii_hint": pii_hint}).rowcount
        conn.execute(QUERIES["prepare_partition"], {"table": f"public.{part.name}{REWRITE_SUFFIX}"})
        conn.execute(_statement("add_range_check", table=target,
                                constraint=sql.Identifier(part.name + REWRITE_SUFFIX + "_range"),
                                from_at=sql.Literal(part.from_at), to_at=sql.Literal(part.to_at)))
    if _with_lock_timeout(db, lambda conn: _swap(conn, part, target, seen, now)):
        return max(copied, 0)
    with db.connection() as conn:
        conn.execute(_statement("drop_table_if_exists", table=target))
    return None


def _swap(conn: psycopg.Connection[Any], part: Partition, target: sql.Identifier,
          seen: int, now: datetime) -> bool:
    """Put the anonymized copy in the old week's place, unless a forget came in between."""
    if _epoch(conn, "edit_epoch_locked") != seen:
        log.info("a forget changed %s during its rewrite; it is rewritten next run", part.name)
        return False
    conn.execute(_statement("detach_partition", table=part.table))
    conn.execute(_statement("drop_partition", table=part.table))
    conn.execute(_statement("rename_table", table=target, name=sql.Identifier(part.name)))
    for row in conn.execute(QUERIES["table_indexes"], {"table": f"public.{part.name}"}).fetchall():
        index = _first(row)
        if index.startswith(part.name + REWRITE_SUFFIX):
            conn.execute(_statement("rename_index", index=sql.Identifier("public", index),
                                    name=sql.Identifier(part.name + index[len(part.name)
                                                                          + len(REWRITE_SUFFIX):])))
    conn.execute(_statement("attach_partition", table=part.table,
                            from_at=sql.Literal(part.from_at), to_at=sql.Literal(part.to_at)))
    conn.execute(QUERIES["mark_anonymized"], {"now": now, "name": part.name})
    return True


def _epoch(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(QUERIES[query]).fetchone()
    return int(_first(row)) if row is not None else 0


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def mark_collect_purged(db: Database, part: Partition, now: datetime) -> None:
    """Its /collect and /measure rows are gone: later purges skip this week for them."""
    db.execute(QUERIES["mark_collect_purged"], {"now": now, "name": part.name})
