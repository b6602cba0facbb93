"""Writer throughput next to the physical limit, in one run.

Both sides get the same demo-like rows (backend/services/demo.py) and a fresh, migrated,
fully indexed ``user_activity_events``:

* raw COPY: one binary ``COPY`` of the finished rows straight into the table (no privacy
  step, no sessions, no dedupe) — the fastest PostgreSQL can take them here;
* writer: the same events as queue items (raw IP/UA, user id) submitted to an
  ``EventWriter`` and timed until ``flush()`` returns: privacy step (UA reduction, salted
  hashes), tombstone check, session lookup and upserts, COPY (through a staging table and
  ``INSERT … ON CONFLICT DO NOTHING`` only when an id is already stored), one transaction
  per batch.

Each round runs both sides, in alternating order; the ratio of each round's pair and the
median over the rounds are printed (single rounds swing by ±20 points on this machine).

``python -m bench.writer_throughput [--events 100000] [--batch-size 500] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from backend.config import Settings
from backend.scripts import demo_data
from backend.services.ingest import items
from backend.services.ingest.writer import EVENT_COLUMNS, EVENT_TYPES_SQL, EventWriter
from bench.common import figure, fresh_database

UAS = {
    "desktop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/120.0.0.0 Safari/537.36",
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "tablet": "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
              "Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
}


def demo_rows(events: int, seed: int = 1) -> list[tuple[Any, ...]]:
    """``events`` typed rows in EVENT_COLUMNS order, from the demo generator."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    students = demo_data.build_students(rng, max(300, events // 500), 30)
    families = demo_data.build_parents(rng, students)
    factory = demo_data.EventFactory(rng, now, 30)
    rows = []
    for raw in demo_data.iter_events(factory, students, families, events):
        row = list(raw)
        row[0] = uuid.UUID(row[0])
        row[1] = datetime.fromisoformat(row[1])
        row[2] = datetime.fromisoformat(row[2])
        row[3] = uuid.UUID(row[3]) if row[3] else None
        row[6] = uuid.UUID(row[6]) if row[6] else None
        row[19] = json.loads(row[19])
        rows.append(tuple(row))
    return rows


def as_items(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The same events as a request would queue them: raw client facts, no derived columns.

    Rows are made by ``items.event_row`` as the endpoints make them, then given the demo
    row's own values (so both sides store the same data).
    """
    received = datetime.now(UTC)
    derived = {"visitor_hash", "network_hash", "session_id", "browser", "os", "device_type",
               "user_id"}
    out = []
    for values in rows:
        record = dict(zip(EVENT_COLUMNS, values, strict=True))
        row = items.event_row(record["event_type"], record["received_at"])
        row.update((k, v) for k, v in record.items() if k not in derived)
        ip = f"10.{record['visitor_hash'][0]}.{record['visitor_hash'][1]}.7" \
            if record["visitor_hash"] else "10.0.0.1"
        client = {"ip": ip, "ua": UAS.get(record["device_type"] or "", UAS["desktop"]),
                  "origin": "https://app.example", "token": None}
        out.append({"kind": "event", "row": row, "received_at": received, "client": client,
                    "user_id": record["user_id"]})
    return out


def raw_copy(url: str, rows: list[tuple[Any, ...]]) -> float:
    """Seconds for one binary COPY of ``rows`` into the table, committed."""
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(
                f"COPY public.user_activity_events ({', '.join(EVENT_COLUMNS)}) "
                "FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(EVENT_TYPES_SQL))
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started


def through_writer(url: str, items: list[dict[str, Any]], batch_size: int) -> tuple[float, int]:
    """Seconds from the first submit until everything is written; and the rows stored."""
    # The queue holds every item at once (its byte bound too: the default would refuse
    # most of 100,000 events), so the figure is queue → PostgreSQL, not the bound.
    settings = Settings(batch_size=batch_size, flush_interval=0.5, queue_size=len(items) + 1,
                        queue_bytes=1 << 40)
    writer = EventWriter(url, settings, autostart=False)
    try:
        for item in items:  # fill the queue first: the figure is queue → PostgreSQL
            if not writer.submit(item):
                raise RuntimeError(f"the queue refused an event: {writer.dropped}")
        started = time.perf_counter()
        writer.start()
        left = writer.flush(600)
        elapsed = time.perf_counter() - started
    finally:
        writer.close(5)
    if left:
        raise RuntimeError(f"{left} events were not written")
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT count(*) FROM public.user_activity_events").fetchone()
    return elapsed, int(stored[0]) if stored else 0


def raw_side(rows: list[tuple[Any, ...]], batch_size: int, copy_rates: list[float],
             writer_rates: list[float]) -> None:
    """One raw COPY of ``rows`` into a fresh database; its rows/s appended."""
    with fresh_database("wm_bench_copy") as url:
        copy_rates.append(len(rows) / raw_copy(url, rows))


def writer_side(rows: list[tuple[Any, ...]], batch_size: int, copy_rates: list[float],
                writer_rates: list[float]) -> None:
    """The same events through the writer into a fresh database; its events/s appended."""
    items = as_items(rows)
    with fresh_database("wm_bench_writer") as url:
        seconds, stored = through_writer(url, items, batch_size)
        if stored != len(rows):
            raise RuntimeError(f"stored {stored} of {len(rows)}")
        writer_rates.append(len(rows) / seconds)


def main(argv: list[str]) -> None:
    """Print raw COPY rows/s, writer events/s and their ratio, measured side by side."""
    parser = argparse.ArgumentParser(prog="python -m bench.writer_throughput")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rows = demo_rows(args.events)
    copy_rates: list[float] = []
    writer_rates: list[float] = []
    for round_no in range(args.rounds):
        # each side goes first in every other round: what the one before leaves behind (dirty
        # pages, a checkpoint) weighs on both alike
        sides = (raw_side, writer_side) if round_no % 2 == 0 else (writer_side, raw_side)
        for side in sides:
            side(rows, args.batch_size, copy_rates, writer_rates)
        print(f"  round {round_no + 1}: raw COPY {copy_rates[-1]:,.0f} rows/s, "
              f"writer {writer_rates[-1]:,.0f} events/s "
              f"({100 * writer_rates[-1] / copy_rates[-1]:.1f} %)", flush=True)
    copy_rate, writer_rate = statistics.median(copy_rates), statistics.median(writer_rates)
    figure("events per run", len(rows))
    figure("writer batch size", args.batch_size)
    figure("raw binary COPY (median)", copy_rate, "rows/s")
    figure("writer: queue → PostgreSQL (median)", writer_rate, "events/s")
    figure("writer / raw COPY", 100 * writer_rate / copy_rate, "%")
    # each round's two sides ran one after the other: the pairs share the machine's load
    figure("writer / raw COPY, median of the rounds' ratios", statistics.median(
        100 * w / c for w, c in zip(writer_rates, copy_rates, strict=True)), "%")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
