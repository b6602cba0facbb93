"""Bulk-load demo-like events (COPY) into a migrated database for benchmarks.

``python -m bench.generate --database URL --events 1000000 [--students 2000] [--days 90]``
or, from Python, ``generate(url, events, students=..., days=..., seed=1)``. The rows
come from the same generator as ``waymark demo`` (backend/services/demo.py): personas,
sessions with page views and exits, quests, badges, tutor, logins, errors, parents with
guardian links, landing visits and conversions. Same seed, same day: same data.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import psycopg

from backend.scripts import demo_data


def generate(url: str, events: int, *, students: int, days: int, seed: int = 1,
             now: datetime | None = None) -> demo_data.DemoSummary:
    """Append ``events`` demo-like events (plus their error rows and guardian links) to ``url``."""
    with psycopg.connect(url, prepare_threshold=None) as conn:
        conn.execute("SET synchronous_commit = off")
        summary = demo_data.load(conn, events=events, students=students, days=days, seed=seed,
                            now=now or datetime.now(UTC))
        conn.commit()
        conn.execute("ANALYZE public.user_activity_events")
        conn.execute("ANALYZE public.error_events")
        conn.commit()
    return summary


def main(argv: list[str]) -> None:
    """Command line: load N events into the given database and print what was written."""
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__)
    parser.add_argument("--database", required=True, help="superuser URL of a migrated database")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--students", type=int, default=0,
                        help="default: one per 500 events, at least 300")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    students = args.students or max(300, args.events // 500)
    started = time.perf_counter()
    summary = generate(args.database, args.events, students=students, days=args.days,
                       seed=args.seed)
    elapsed = time.perf_counter() - started
    print(f"generated events={summary.events:,} errors={summary.errors:,} "
          f"students={summary.students:,} parents={summary.parents:,} "
          f"in {elapsed:,.1f} s ({summary.events / max(elapsed, 1e-9):,.0f} events/s)")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
