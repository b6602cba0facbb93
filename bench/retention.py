"""Anonymize and purge over a large events table: rows/s, memory, and how long anything waits.

``python -m bench.retention [--events 10000000] [--days 1000] [--keep] [--demo-data]``
loads time-ordered events spread over ``days`` days (generated in SQL: 1 in 100 with an
e-mail and a phone number, a third with quest ids; ``--demo-data`` uses bench.generate
instead, slower), then runs, as the cron jobs do:
purge (730 days), anonymize (90 days), and both again (the idempotent second run). For
each run it prints rows/s, the peak Python memory (tracemalloc) and the process's peak
RSS, the longest batch transaction (row locks are held at most that long), the lock
modes the job took on user_activity_events (sampled from pg_locks every 20 ms), and the
worst latency of a concurrent writer inserting one event every 20 ms meanwhile.
"""

from __future__ import annotations

import argparse
import resource
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from backend.config import Settings
from backend.db import Database
from backend.services.privacy import export, partitions, retention
from backend.services.privacy.forget import forget_user
from bench.common import figure, fresh_database
from bench.generate import generate

JOB_LOCKS = """
SELECT DISTINCT l.mode
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.relation = 'public.user_activity_events'::regclass
  AND a.application_name = 'waymark' AND a.datname = current_database()
"""
#: events in time order (as ingestion appends them), 1 in 100 carrying an e-mail and a phone
#: number, a third carrying quest ids; user, session and visitor hash on every row.
GENERATE_EVENTS = """
INSERT INTO public.user_activity_events (event_id, occurred_at, received_at, user_id,
    visitor_hash, session_id, event_type, event_category, page_path, duration_ms, event_data)
SELECT gen_random_uuid(), t, t,
       ('00000000-0000-4000-8000-' || lpad(to_hex(i %% %(users)s), 12, '0'))::uuid,
       substr(sha256(int8send(i %% %(users)s)), 1, 16),
       ('00000000-0000-4000-9000-' || lpad(to_hex(i / 20), 12, '0'))::uuid,
       (ARRAY['page_view', 'quest_viewed', 'quest_started', 'quest_completed', 'login_success',
              'badge_earned', 'tutor_message_sent', 'page_exit'])[1 + i %% 8],
       (ARRAY['navigation', 'quest', 'quest', 'quest', 'auth', 'badge', 'tutor',
              'navigation'])[1 + i %% 8]::public.event_category,
       '/quests/q' || (i %% 40),
       (i %% 9000),
       CASE WHEN i %% 100 = 0
            THEN jsonb_build_object('email', 'kid' || i || '@school.example',
                                    'note', 'call +1 555 123 ' || lpad((i %% 10000)::text, 4, '0'),
                                    'quest_id', 'q' || (i %% 40))
            WHEN i %% 3 = 0
            THEN jsonb_build_object('quest_id', 'q' || (i %% 40), 'quest_title', 'Quest ' || (i %% 40))
            ELSE '{}'::jsonb END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i,
     LATERAL (SELECT %(start)s::timestamptz
                     + (%(span)s::interval * (i::float8 / %(total)s)) AS t) AS ts
"""

INSERT_ONE = """
INSERT INTO public.user_activity_events (occurred_at, user_id, event_type, event_data)
VALUES (now(), %s, 'page_view', '{}')
"""


class Observer:
    """Samples the job's lock modes and times a concurrent writer while a job runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.modes: set[str] = set()
        self.insert_latencies: list[float] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._sample_locks, daemon=True),
                         threading.Thread(target=self._write, daemon=True)]

    def __enter__(self) -> Observer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)

    def _sample_locks(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(0.02):
                self.modes.update(row[0] for row in conn.execute(JOB_LOCKS).fetchall())

    def _write(self) -> None:
        user = uuid.uuid4()
        with psycopg.connect(self.url, autocommit=True, application_name="bench-writer") as conn:
            while not self._stop.wait(0.02):
                started = time.perf_counter()
                conn.execute(INSERT_ONE, (user,))
                self.insert_latencies.append(time.perf_counter() - started)


@contextmanager
def measured() -> Iterator[dict[str, float]]:
    """Wall time and peak Python memory of the block."""
    result: dict[str, float] = {}
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield result
    finally:
        result["seconds"] = time.perf_counter() - started
        result["peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()


def run_job(label: str, url: str, job: Callable[[Database], retention.RunStats]) -> None:
    """Run one job with observers around it and print its figures."""
    db = Database(url, min_size=1, max_size=2, name="bench-retention")
    db.open(wait=True)
    try:
        with Observer(url) as observer, measured() as m:
            stats = job(db)
    finally:
        db.close()
    print(f"-- {label}")
    figure("rows changed", stats.total)
    for table, rows in stats.rows.items():
        if rows:
            figure(f"  {table}", rows)
    figure("blocks walked", stats.blocks)
    figure("wall time", m["seconds"], "s")
    figure("rows/s", stats.total / max(m["seconds"], 1e-9))
    figure("whole week partitions (dropped or rewritten)", stats.partitions)
    figure("batches (one short transaction each)", stats.batches)
    figure("longest batch transaction (row locks held)", stats.longest_batch_seconds * 1000, "ms")
    figure("lock modes on user_activity_events", ", ".join(sorted(observer.modes)) or "none seen")
    latencies = sorted(observer.insert_latencies)
    if latencies:
        figure("concurrent inserts during the run", len(latencies))
        figure("  worst insert latency", latencies[-1] * 1000, "ms")
        figure("  p99 insert latency", latencies[int(len(latencies) * 0.99)] * 1000, "ms")
        figure("  p50 insert latency", latencies[len(latencies) // 2] * 1000, "ms")
    figure("peak Python memory (tracemalloc)", m["peak_mb"], "MB")
    figure("peak RSS of this process", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "MB")


PARTITION_INDEXES = """
SELECT ic.relname FROM pg_inherits i JOIN pg_index x ON x.indrelid = i.inhrelid
JOIN pg_class ic ON ic.oid = x.indexrelid
WHERE i.inhparent = 'public.user_activity_events'::regclass
"""

PARTITIONS = """
SELECT inhrelid::regclass::text FROM pg_inherits
WHERE inhparent = 'public.user_activity_events'::regclass
"""


def generate_events(url: str, events: int, *, days: int, now: datetime,
                    chunk: int = 1_000_000) -> None:
    """Append ``events`` time-ordered events spread over ``days`` days ending at ``now``.

    Each week has its partition, made beforehand as the nightly job would have; indexes
    are dropped during the load and rebuilt afterwards (much faster than maintaining them
    row by row), so the jobs run against fully indexed partitions.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SELECT waymark.ensure_event_partitions(%s, %s)",
                     ((now - timedelta(days=days + 1)).date(), (now + timedelta(days=7)).date()))
        for (name,) in conn.execute(PARTITION_INDEXES).fetchall():
            conn.execute(sql.SQL("DROP INDEX public.{}").format(sql.Identifier(name)))
        for first in range(0, events, chunk):
            conn.execute(GENERATE_EVENTS, {
                "first": first, "last": min(first + chunk, events) - 1, "total": events,
                "users": 5000, "start": now - timedelta(days=days),
                "span": timedelta(days=days)})
            print(f"   generated {min(first + chunk, events):,} events", flush=True)
        parts = [r[0] for r in conn.execute(PARTITIONS).fetchall()]
        for part in parts:
            conn.execute("SELECT waymark.prepare_event_partition(%s::regclass)", (part,))
        print(f"   rebuilt the indexes of {len(parts)} partitions", flush=True)
        conn.execute("VACUUM ANALYZE public.user_activity_events")


def compare_anonymize_paths(url: str, now: datetime, settings: Settings) -> None:
    """The same week's worth of rows anonymized both ways, side by side: row by row (the
    path before partitions, still used for the legacy table, the default partition and a
    week still open to late events) and a whole-week rewrite. Two neighbouring weeks past the
    anonymization age, with the concurrent writer inserting meanwhile."""
    db = Database(url, min_size=1, max_size=3, name="bench-retention")
    db.open(wait=True)
    try:
        old = [p for p in partitions.partitions(db) if p.is_week
               and p.before(now - timedelta(days=settings.anonymize_after_days + 5))]
        by_row, whole = old[-2], old[-1]
        keys = [k.lower() for k in settings.pii_keys]
        hint = retention.pii_hint(keys)
        params = {"now": now, "cutoff": now, "pii_keys": keys, "pii_hint": hint}
        step = retention.event_steps(retention.ANONYMIZE_EVENTS, [by_row])[0]
        stats = retention.RunStats(action="anonymize", cutoff=now)
        with Observer(url) as row_observer, measured() as row_m:
            blocks, _ = retention.table_extent(db, step.table)
            row_count = retention.run_in_block_batches(
                db, step.statement, params, blocks=blocks, stats=stats,
                batcher=retention._Batcher(target=0.5))  # noqa: SLF001 - the job's own sizing
        with Observer(url) as rewrite_observer, measured() as rewrite_m:
            rewritten = partitions.rewrite_anonymized(db, whole, now=now, pii_keys=keys,
                                                      pii_hint=hint) or 0
    finally:
        db.close()
    print("-- anonymize one week, both ways (side by side)")
    for label, rows, m, observer in (("row by row (ctid batches)", row_count, row_m, row_observer),
                                     ("whole-week rewrite", rewritten, rewrite_m, rewrite_observer)):
        latencies = sorted(observer.insert_latencies) or [0.0]
        figure(f"  {label}: rows", rows)
        figure(f"  {label}: rows/s", rows / max(m["seconds"], 1e-9))
        figure(f"  {label}: concurrent insert p99",
               latencies[int(len(latencies) * 0.99)] * 1000, "ms")
    figure("  rewrite / row-by-row rows/s", (rewritten / max(rewrite_m["seconds"], 1e-9))
           / max(row_count / max(row_m["seconds"], 1e-9), 1e-9), "x")


def forget_and_export(url: str, user: uuid.UUID, now: datetime) -> None:
    """Export then forget one user on the big table, with a writer inserting meanwhile."""
    db = Database(url, min_size=1, max_size=2, name="bench-forget")
    db.open(wait=True)
    try:
        with measured() as m:
            size = sum(len(chunk) for chunk in export.export_user(db, user, now=now))
        print(f"-- export of one user ({user})")
        figure("bytes", size)
        figure("wall time", m["seconds"], "s")
        figure("peak Python memory (tracemalloc)", m["peak_mb"], "MB")
        with Observer(url) as observer:
            receipt = forget_user(db, user, now=now)
        print("-- forget of the same user")
        figure("rows removed", receipt.total_removed)
        figure("writers blocked (exclusive forget lock held)", receipt.lock_held_seconds * 1000,
               "ms")
        figure("mention scan of every text/JSON column", receipt.seconds
               - receipt.lock_held_seconds, "s")
        figure("  worst concurrent insert latency", max(observer.insert_latencies or [0]) * 1000,
               "ms")
    finally:
        db.close()


def table_size(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) "
                           "FROM pg_inherits WHERE inhparent = "
                           "'public.user_activity_events'::regclass").fetchone()
    return str(row[0]) if row else "?"


def main(argv: list[str]) -> None:
    """Generate the events, then run purge and anonymize twice each, printing figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="events to generate (the figures in bench/README.md: 10000000)")
    parser.add_argument("--days", type=int, default=1000, help="spread the events over this")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--demo-data", action="store_true",
                        help="generate with bench.generate (demo-like, slower) instead of SQL")
    args = parser.parse_args(argv)
    settings = Settings()
    now = datetime.now(UTC)
    name = f"wm_bench_retention_{args.events}"
    with fresh_database(name, keep=args.keep) as url:
        started = time.perf_counter()
        if args.demo_data:
            generate(url, args.events, students=max(300, args.events // 500), days=args.days,
                     now=now)
        else:
            generate_events(url, args.events, days=args.days, now=now)
        print(f"== retention over {args.events:,} events spread over {args.days} days "
              f"(generated in {time.perf_counter() - started:,.0f} s; table + indexes "
              f"{table_size(url)})", flush=True)

        def purge(db: Database) -> retention.RunStats:
            return retention.purge(db, now=now, older_than_days=settings.delete_after_days,
                                   collect_retention_days=settings.collect_retention_days)

        def anonymize(db: Database) -> retention.RunStats:
            return retention.anonymize(db, now=now, older_than_days=settings.anonymize_after_days,
                                       pii_keys=settings.pii_keys)

        compare_anonymize_paths(url, now, settings)
        run_job(f"purge (older than {settings.delete_after_days} days)", url, purge)
        run_job(f"anonymize (older than {settings.anonymize_after_days} days)", url, anonymize)
        run_job("purge, second run (idempotent)", url, purge)
        run_job("anonymize, second run (idempotent)", url, anonymize)
        forget_and_export(url, uuid.UUID("00000000-0000-4000-8000-00000000002a"), now)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
