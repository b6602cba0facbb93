"""Retention: anonymize rows after N days, delete them after M, in short batches.

Both jobs walk each table by physical block ranges (``ctid`` between ``(lo,0)`` and
``(hi,0)``: a TID range scan reads only those blocks) and commit after every range, so
no transaction holds its row locks for long, memory stays flat whatever the table size,
and the table itself is only ever locked ROW EXCLUSIVE (inserts go on). The range grows
or shrinks so that one batch takes about ``target_seconds``.

Anonymize sets ``anonymized_at``; rows with it set are never touched again, so a second
run changes nothing. ``now`` is always a parameter: the cut-offs never come from the
database clock (tests freeze time in Python; PostgreSQL's ``now()`` does not move).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from psycopg import sql
from psycopg.types.json import Jsonb

from backend.db import Database
from backend.services.privacy import QUERIES, partitions
from backend.services.privacy.tombstones import DELETE_EXPIRED

ProgressFn = Callable[[int], None]
Statement = str | sql.Composed

MIN_BLOCKS = 16
MAX_BLOCKS = 65_536
FIRST_BLOCKS = 32

#: a superset of what waymark.scrub_jsonb changes, checked on the JSON text first so
#: documents without anything to scrub skip the (slower) recursive function.
PII_HINT = r'@|\d(?:[ ().-]{0,2}\d){6}'

#: event types written by /collect and /measure, kept only WAYMARK_COLLECT_RETENTION_DAYS.
COLLECT_EVENT_TYPES = ("landing_visit", "conversion")

#: every batched statement works on one block range: ``ctid`` in [(lo,0), (hi,0)).
#: JSON documents are only run through the recursive scrub when the cheap hint matches.

LOG_RETENTION = QUERIES["log_retention"]
PURGE_DELETION_LOG = QUERIES["purge_deletion_log"]
ANONYMIZE_EVENTS = QUERIES["anonymize_events"]

ANONYMIZE_SESSIONS = QUERIES["anonymize_sessions"]

ANONYMIZE_ERRORS = QUERIES["anonymize_errors"]

ANONYMIZE_JOURNEY = QUERIES["anonymize_journey"]

#: interventions lose both people and their free-text note; alert rows lose the people.
ANONYMIZE_INTERVENTIONS = QUERIES["anonymize_interventions"]

ANONYMIZE_ALERT_CROSSINGS = QUERIES["anonymize_alert_crossings"]

ANONYMIZE_ALERT_DELIVERIES = QUERIES["anonymize_alert_deliveries"]

#: rows the writer could not store keep their payload (user id included) as it came:
#: they cannot be anonymized field by field, so they go when their age passes N days.
DELETE_OLD_DEAD_LETTERS = QUERIES["delete_old_dead_letters"]

SCRUB_ERROR_GROUPS = QUERIES["scrub_error_groups"]

PURGE_EVENTS = QUERIES["purge_events"]

PURGE_COLLECT_EVENTS = QUERIES["purge_collect_events"]

PURGE_SESSIONS = QUERIES["purge_sessions"]

PURGE_ERRORS = QUERIES["purge_errors"]

PURGE_JOURNEY = QUERIES["purge_journey"]

#: daily rollups (page_view_analytics and any other public table keyed by a ``day`` date).
DAILY_TABLES = QUERIES["daily_tables"]

PURGE_ERROR_GROUPS = QUERIES["purge_error_groups"]

PURGE_AUDIT = QUERIES["purge_audit"]

TABLE_EXTENT = QUERIES["table_extent"]

INSERT_AUDIT = QUERIES["insert_audit"]

EVENTS = "user_activity_events"


class Step(NamedTuple):
    """One batched statement over one table; its rows count under ``label``."""

    label: str
    table: str
    statement: Statement


#: the events come first, one step per partition that still needs the row-by-row path
#: (see ``partitions``); the other tables are single steps.
def table_steps(*pairs: tuple[str, Statement]) -> tuple[Step, ...]:
    """One step per (table, statement): a whole table, counted under its own name."""
    return tuple(Step(table, table, statement) for table, statement in pairs)


ANONYMIZE_STEPS = table_steps(
    ("user_sessions", ANONYMIZE_SESSIONS),
    ("error_events", ANONYMIZE_ERRORS),
    ("learning_journey_events", ANONYMIZE_JOURNEY),
    ("interventions", ANONYMIZE_INTERVENTIONS),
    ("alert_crossings", ANONYMIZE_ALERT_CROSSINGS),
    ("alert_deliveries", ANONYMIZE_ALERT_DELIVERIES),
    ("waymark.dead_letters", DELETE_OLD_DEAD_LETTERS),
)

#: order matters: error events go before the groups that may then be empty.
PURGE_STEPS = table_steps(
    ("user_sessions", PURGE_SESSIONS),
    ("error_events", PURGE_ERRORS),
    ("error_groups", PURGE_ERROR_GROUPS),
    ("learning_journey_events", PURGE_JOURNEY),
    ("privacy_audit", PURGE_AUDIT),
)


def event_steps(template: str, parts: Sequence[partitions.Partition]) -> list[Step]:
    """The row-by-row statement once per partition of the events named in ``parts``."""
    return [Step(EVENTS, f"public.{p.name}", sql.SQL(template).format(
        table=p.table)) for p in parts]


@dataclass
class RunStats:
    """What a retention run did: rows per table, batches, and its longest transaction."""

    action: str
    cutoff: datetime
    #: purge only: the earlier cut-off of /collect and /measure rows (WAYMARK_COLLECT_RETENTION_DAYS)
    collect_cutoff: datetime | None = None
    rows: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    blocks: int = 0
    seconds: float = 0.0
    longest_batch_seconds: float = 0.0
    #: whole week partitions of the events: rewritten (anonymize) or dropped (purge)
    partitions: int = 0

    @property
    def total(self) -> int:
        """Rows changed (anonymize) or deleted (purge) over all tables."""
        return sum(self.rows.values())

    def audit_details(self) -> dict[str, Any]:
        """The audit row's details: counts and timings only, nothing about anyone."""
        return {
            "cutoff": self.cutoff.isoformat(),
            **({"collect_cutoff": self.collect_cutoff.isoformat()} if self.collect_cutoff else {}),
            "rows": self.rows,
            "total": self.total,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "longest_batch_seconds": round(self.longest_batch_seconds, 3),
            "partitions": self.partitions,
        }


@dataclass
class _Batcher:
    """Sizes each block range so one batch lasts about ``target`` seconds.

    The size assumes every row of a range qualifies (``rows_per_block`` rows at the
    learned cost per changed row), so walking from an empty region into a dense one
    never produces an oversized transaction; empty regions just take more, cheap, batches.
    """

    target: float
    blocks: int = FIRST_BLOCKS
    rows_per_block: float = 50.0
    seconds_per_row: float = 5e-5

    def adapt(self, elapsed: float, changed: int) -> None:
        if changed:
            self.seconds_per_row = (self.seconds_per_row + elapsed / changed) / 2
        ideal = int(self.target / (self.rows_per_block * self.seconds_per_row))
        if elapsed > self.target:
            ideal = min(ideal, self.blocks // 2)
        self.blocks = max(MIN_BLOCKS, min(MAX_BLOCKS, ideal, self.blocks * 4))


def pii_hint(pii_keys: Sequence[str]) -> str:
    """The cheap pre-check pattern: an '@', a phone-like digit run, or a PII key."""
    keys = "|".join(re.escape(key.lower()) for key in pii_keys if key)
    return f'{PII_HINT}|"(?:{keys})": ' if keys else PII_HINT


def table_extent(db: Database, table: str) -> tuple[int, float | None]:
    """How many blocks the table has now (the extent one run walks), and rows per block."""
    qualified = table if "." in table else f"public.{table}"
    row = db.fetch_one(TABLE_EXTENT, {"table": qualified})
    if row is None:
        return 0, None
    per_block = row["rows_per_block"]
    return int(row["blocks"]), float(per_block) if per_block else None


def run_in_block_batches(db: Database, statement: str | sql.Composed, params: dict[str, Any], *,
                         blocks: int, stats: RunStats, batcher: _Batcher,
                         progress: ProgressFn | None = None) -> int:
    """Run a ctid-ranged statement over blocks [0, blocks), one transaction per range.

    Blocks appended after the run started hold rows written (or moved by this very
    UPDATE) since: they are younger than any cut-off, so the walk stops at ``blocks``.
    """
    done = 0
    lo = 0
    while lo < blocks:
        hi = min(lo + batcher.blocks, blocks)
        started = time.perf_counter()
        with db.connection() as conn, conn.cursor() as cur:
            cur.execute(statement, {**params, "lo": f"({lo},0)", "hi": f"({hi},0)"})
            changed = max(cur.rowcount, 0)
        elapsed = time.perf_counter() - started
        done += changed
        stats.batches += 1
        stats.longest_batch_seconds = max(stats.longest_batch_seconds, elapsed)
        if progress is not None:
            progress(hi - lo)
        batcher.adapt(elapsed, changed)
        lo = hi
    return done


def _run(db: Database, action: str, steps: Sequence[Step],
         params: dict[str, Any], cutoff: datetime, *, target_seconds: float, first_blocks: int,
         progress: ProgressFn | None, on_start: Callable[[int], None] | None) -> RunStats:
    started = time.perf_counter()
    stats = RunStats(action=action, cutoff=cutoff)
    extents = [(step.label, step.statement, *table_extent(db, step.table)) for step in steps]
    stats.blocks = sum(blocks for _, _, blocks, _ in extents)
    if on_start is not None:
        on_start(stats.blocks)
    for table, statement, blocks, per_block in extents:
        batcher = _Batcher(target=target_seconds, blocks=first_blocks)
        if per_block:
            batcher.rows_per_block = per_block
        changed = run_in_block_batches(db, statement, params, blocks=blocks, stats=stats,
                                       batcher=batcher, progress=progress)
        stats.rows[table] = stats.rows.get(table, 0) + changed
    stats.seconds = time.perf_counter() - started
    return stats


def anonymize(db: Database, *, now: datetime, older_than_days: int, pii_keys: Sequence[str],
              target_seconds: float = 0.5, first_blocks: int = FIRST_BLOCKS,
              progress: ProgressFn | None = None,
              on_start: Callable[[int], None] | None = None) -> RunStats:
    """Cut every link to a person from rows older than the cut-off; scrub PII from their data."""
    cutoff = now - timedelta(days=older_than_days)
    keys = [key.lower() for key in pii_keys]
    params: dict[str, Any] = {"now": now, "cutoff": cutoff, "pii_keys": keys,
                              "pii_hint": pii_hint(keys)}
    started = time.perf_counter()
    with partitions.maintenance_lock(db):
        parts = [p for p in partitions.partitions(db)
                 if p.may_hold_before(cutoff) and p.anonymized_at is None]
        rewritten, left = _rewrite_whole_weeks(db, parts, now, params)
        stats = _run(db, "anonymize", [*event_steps(ANONYMIZE_EVENTS, left), *ANONYMIZE_STEPS],
                     params, cutoff, target_seconds=target_seconds, first_blocks=first_blocks,
                     progress=progress, on_start=on_start)
    stats.rows[EVENTS] = stats.rows.get(EVENTS, 0) + sum(rewritten.values())
    stats.partitions = len(rewritten)
    stats.seconds = time.perf_counter() - started
    stats.rows["error_groups"] = db.execute(SCRUB_ERROR_GROUPS, {"cutoff": cutoff})
    record_audit(db, stats)
    return stats


def purge(db: Database, *, now: datetime, older_than_days: int, collect_retention_days: int,
          target_seconds: float = 0.5, first_blocks: int = FIRST_BLOCKS,
          progress: ProgressFn | None = None,
          on_start: Callable[[int], None] | None = None) -> RunStats:
    """Delete rows older than the cut-off from every table (collect/measure rows sooner).

    A week of events wholly past the cut-off is dropped. A week straddling it is deleted
    row by row only while it may hold personal data (not yet anonymized): an anonymized week
    links to no one, so it waits until it is wholly past and goes in one drop, at most six
    days later, instead of being deleted a day at a time and dropped empty."""
    cutoff = now - timedelta(days=older_than_days)
    params: dict[str, Any] = {
        "cutoff": cutoff,
        "collect_cutoff": now - timedelta(days=collect_retention_days),
        "collect_types": list(COLLECT_EVENT_TYPES),
    }
    collect_cutoff = params["collect_cutoff"]
    started = time.perf_counter()
    with partitions.maintenance_lock(db):
        dropped_rows, dropped = partitions.drop_expired(db, cutoff)
        every = partitions.partitions(db)
        whole = [p for p in every if p.is_week and p.anonymized_at]  # dropped, never by row
        by_row = [p for p in every if p not in whole and (
            p.may_hold_before(cutoff)
            or (p.may_hold_before(collect_cutoff) and p.collect_purged_at is None))]
        collect_only = [p for p in whole
                        if p.may_hold_before(collect_cutoff) and p.collect_purged_at is None]
        parts = by_row + collect_only
        stats = _run(db, "purge", [*event_steps(PURGE_EVENTS, by_row),
                                   *event_steps(PURGE_COLLECT_EVENTS, collect_only),
                                   *PURGE_STEPS, *daily_rollup_steps(db)], params, cutoff,
                     target_seconds=target_seconds, first_blocks=first_blocks,
                     progress=progress, on_start=on_start)
        for part in parts:
            if part.is_week and part.before(collect_cutoff):
                partitions.mark_collect_purged(db, part, now)
    stats.rows[EVENTS] = stats.rows.get(EVENTS, 0) + dropped_rows
    stats.partitions = len(dropped)
    stats.seconds = time.perf_counter() - started
    stats.collect_cutoff = collect_cutoff
    db.execute(DELETE_EXPIRED)
    db.execute(PURGE_DELETION_LOG, {"now": now})
    record_audit(db, stats)
    return stats


def _rewrite_whole_weeks(db: Database, parts: Sequence[partitions.Partition], now: datetime,
                         params: dict[str, Any]
                         ) -> tuple[dict[str, int], list[partitions.Partition]]:
    """Rewrite each week partition of ``parts`` (each begins before the cut-off) whole, its
    later days early rather than any day late; returns the rows of each one rewritten, and
    the partitions left to the row-by-row path: the legacy and default partitions, a week
    that may still receive late events, and any week a forget changed during its rewrite
    (anonymized row by row now, rewritten next run)."""
    rewritten: dict[str, int] = {}
    left: list[partitions.Partition] = []
    for part in parts:
        rows = None
        if part.is_week and part.closed(now):
            rows = partitions.rewrite_anonymized(db, part, now=now, pii_keys=params["pii_keys"],
                                                 pii_hint=params["pii_hint"])
        if rows is None:
            left.append(part)
        else:
            rewritten[part.name] = rows
    return rewritten, left


def daily_rollup_steps(db: Database) -> list[Step]:
    """One purge step per daily rollup table: rows whose ``day`` is before the cut-off."""
    tables = [row["relname"] for row in db.fetch_all(DAILY_TABLES)]
    return list(table_steps(*((table, sql.SQL(
        "DELETE FROM {} WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid "
        "AND day < (%(cutoff)s AT TIME ZONE 'UTC')::date").format(
        sql.Identifier("public", table))) for table in tables)))


def record_audit(db: Database, stats: RunStats) -> None:
    """Write the run's audit row (counts only) and its rule in the deletion log, which the
    warehouse exports send on so a copy is anonymized and purged like the tables."""
    db.execute(INSERT_AUDIT, {"action": stats.action, "details": Jsonb(stats.audit_details())})
    db.execute(LOG_RETENTION, {"action": stats.action, "cutoff": stats.cutoff,
                               "collect_cutoff": stats.collect_cutoff})
