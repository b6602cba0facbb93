"""Bytes per event on disk (heap + TOAST + every index of ``user_activity_events``).

Loads demo-like events into a fresh, migrated database — by default 1,000,000 through
``bench.generate`` (COPY of the same rows the writer produces: hashes, session ids, device
families, small ``event_data``); with ``--via-writer`` through the ``EventWriter`` itself
(slower) — then ``VACUUM ANALYZE`` and prints each relation's size and the total per event.

``python -m bench.bytes_per_event [--events 1000000] [--via-writer]``
"""

from __future__ import annotations

import argparse
import time

import psycopg

from bench.common import figure, fresh_database

SIZES = """
SELECT c.relname, pg_relation_size(c.oid) AS bytes
FROM pg_class c
WHERE c.oid = 'public.user_activity_events'::regclass
   OR c.oid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'public.user_activity_events'::regclass)
   OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'public.user_activity_events'::regclass)
   OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid =
        (SELECT reltoastrelid FROM pg_class WHERE oid = 'public.user_activity_events'::regclass))
ORDER BY bytes DESC
"""


def load_via_writer(url: str, events: int) -> None:
    """Send the events through the writer (privacy step, sessions, staging, ON CONFLICT)."""
    from backend.config import Settings
    from backend.services.writer import EventWriter
    from bench.writer_throughput import as_items, demo_rows

    writer = EventWriter(url, Settings(batch_size=500, queue_size=events + 1))
    try:
        for start in range(0, events, 100_000):
            for item in as_items(demo_rows(min(100_000, events - start), seed=start + 1)):
                writer.submit(item)
            if writer.flush(3600):
                raise RuntimeError("the writer could not write everything")
    finally:
        writer.close(10)


def main(argv: list[str]) -> None:
    """Print the on-disk size of the events table and its indexes, per event."""
    parser = argparse.ArgumentParser(prog="python -m bench.bytes_per_event")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--via-writer", action="store_true")
    args = parser.parse_args(argv)
    with fresh_database("wm_bench_bytes") as url:
        started = time.perf_counter()
        if args.via_writer:
            load_via_writer(url, args.events)
        else:
            from bench.generate import generate

            generate(url, args.events, students=max(300, args.events // 500), days=90)
        loaded = time.perf_counter() - started
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE public.user_activity_events")
            row = conn.execute("SELECT count(*) FROM public.user_activity_events").fetchone()
            count = int(row[0]) if row else 0
            sizes = conn.execute(SIZES).fetchall()
    total = sum(int(b) for _, b in sizes)
    figure("events", count)
    figure("loaded via", "EventWriter" if args.via_writer else "bench.generate (COPY)")
    figure("load time", loaded, "s")
    for name, size in sizes:
        figure(f"  {name}", int(size) / max(count, 1), "bytes/event")
    figure("total (heap + TOAST + indexes)", total / max(count, 1), "bytes/event")
    figure("total on disk", total / 1024 / 1024, "MiB")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
