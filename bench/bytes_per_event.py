"""Bytes per event on disk (heap + TOAST + every index of ``user_activity_events``, summed
over its week partitions).

Loads demo-like events into a fresh, migrated database — by default 1,000,000 through
``bench.generate`` (COPY of the same rows the writer produces: hashes, session ids, device
families, small ``event_data``); with ``--via-writer`` through the ``EventWriter`` itself
(slower) — then ``VACUUM ANALYZE`` and prints each relation's size per event, side by side
for three states of the same rows:

* ``v4 ids``: as loaded; the demo's event ids are random version 4 UUIDs, as the browser
  hook sends them (``crypto.randomUUID``);
* ``v7 ids``: the same rows re-inserted in the same order with time-ordered (version 7)
  ids made from ``received_at``, as the server makes them (``items.new_id``) for events
  without a client id (``track()``, the middleware, /collect and /measure);
* ``rebuilt``: after ``REINDEX TABLE`` (every index freshly packed): the floor these
  indexes reach, not a state inserts keep.

It also prints each B-tree's leaf density (pgstattuple, when the extension is available)
and the average stored size of each column.

``python -m bench.bytes_per_event [--events 1000000] [--via-writer] [--only-loaded]``
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import psycopg

from bench.common import figure, fresh_database

#: the events' partitions (the parent holds no rows and has no index of its own).
PARTS = """
SELECT c.oid, c.relname, c.reltoastrelid FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'public.user_activity_events'::regclass
"""

#: sizes summed over every partition: the heaps, their TOAST (with its index), and each
#: index by its role (the partition's name stripped: _event_id, _type, _user, ...).
SIZES = """
WITH parts AS ({parts})
SELECT 'heap (all partitions)' AS name, sum(pg_relation_size(p.oid)) AS bytes FROM parts p
UNION ALL
SELECT 'TOAST', coalesce(sum(pg_total_relation_size(p.reltoastrelid)), 0) FROM parts p
WHERE p.reltoastrelid <> 0
UNION ALL
SELECT 'index ' || substr(ic.relname, length(p.relname) + 2), sum(pg_relation_size(i.indexrelid))
FROM parts p JOIN pg_index i ON i.indrelid = p.oid JOIN pg_class ic ON ic.oid = i.indexrelid
GROUP BY 1
ORDER BY bytes DESC
""".replace("{parts}", PARTS)

#: each B-tree role's leaf density, averaged over partitions weighted by size.
LEAF_DENSITY = """
WITH parts AS ({parts})
SELECT 'index ' || substr(ic.relname, length(p.relname) + 2),
       sum(s.avg_leaf_density * pg_relation_size(i.indexrelid))
           / nullif(sum(pg_relation_size(i.indexrelid)), 0)
FROM parts p JOIN pg_index i ON i.indrelid = p.oid JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_am a ON a.oid = ic.relam AND a.amname = 'btree'
CROSS JOIN LATERAL public.pgstatindex(i.indexrelid) s
WHERE s.leaf_pages > 0
GROUP BY 1
""".replace("{parts}", PARTS)

COLUMNS = """
SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = 'public.user_activity_events'::regclass AND a.attnum > 0
  AND NOT a.attisdropped ORDER BY a.attnum
"""

#: a version 7 UUID for each row from its received_at (48 bits of ms, the rest random):
#: gen_random_uuid()'s bytes with the first six replaced and the version nibble 4 -> 7.
REKEY_V7 = """
CREATE TEMP TABLE wm_rows AS SELECT * FROM public.user_activity_events;
UPDATE wm_rows SET event_id = encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
    PLACING substring(int8send((extract(epoch FROM received_at) * 1000)::bigint) FROM 3)
    FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid;
TRUNCATE public.user_activity_events;
INSERT INTO public.user_activity_events SELECT * FROM wm_rows ORDER BY occurred_at;
DROP TABLE wm_rows
"""

Sizes = dict[str, int]


def load_via_writer(url: str, events: int) -> None:
    """Send the events through the writer (privacy step, sessions, staging, ON CONFLICT)."""
    from backend.config import Settings
    from backend.services.ingest.writer import EventWriter
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


def measure(conn: psycopg.Connection[Any]) -> tuple[Sizes, dict[str, float]]:
    """VACUUM ANALYZE, then each relation's size and each B-tree's leaf density (%)."""
    conn.execute("VACUUM ANALYZE public.user_activity_events")
    sizes = {str(name): int(size) for name, size in conn.execute(SIZES).fetchall()}
    try:
        density = {str(n): float(d) for n, d in conn.execute(LEAF_DENSITY).fetchall()}
    except psycopg.Error:
        density = {}
    return sizes, density


def column_sizes(conn: psycopg.Connection[Any]) -> list[tuple[str, float, float]]:
    """Each column's average stored size over all rows, and the share of rows that have it."""
    names = [str(r[0]) for r in conn.execute(COLUMNS).fetchall()]
    parts = ", ".join(f'avg(coalesce(pg_column_size("{n}"), 0)), avg(("{n}" IS NOT NULL)::int)'
                      for n in names)
    row = conn.execute(f"SELECT {parts}, avg(pg_column_size(t.*)) "  # noqa: S608 - catalog names
                       "FROM public.user_activity_events t").fetchone()
    assert row is not None
    result = [(n, float(row[2 * i] or 0), float(row[2 * i + 1] or 0)) for i, n in enumerate(names)]
    result.append(("(whole row: header + columns + padding)", float(row[-1] or 0), 1.0))
    return result


def print_side_by_side(states: list[tuple[str, Sizes, dict[str, float]]], count: int) -> None:
    """One line per relation: bytes/event (leaf density) in each state."""
    names = list(states[0][1])
    print("  " + f"{'bytes/event (B-tree leaf density)':<40}" + "".join(
        f"{label:>20}" for label, _, _ in states))
    for name in names:
        cells = []
        for _, sizes, density in states:
            cell = f"{sizes.get(name, 0) / count:,.1f}"
            if name in density:
                cell += f" ({density[name]:.0f} %)"
            cells.append(f"{cell:>20}")
        print(f"  {name:<40}" + "".join(cells))
    print(f"  {'total (heap + TOAST + indexes)':<40}" + "".join(
        f"{sum(sizes.values()) / count:>20,.1f}" for _, sizes, _ in states), flush=True)


def main(argv: list[str]) -> None:
    """Print the on-disk size of the events table and its indexes, per event."""
    parser = argparse.ArgumentParser(prog="python -m bench.bytes_per_event")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--via-writer", action="store_true")
    parser.add_argument("--only-loaded", action="store_true",
                        help="measure the rows as loaded only (no v7 re-insert, no REINDEX)")
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
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
            except psycopg.Error:
                pass  # no leaf densities then
            row = conn.execute("SELECT count(*) FROM public.user_activity_events").fetchone()
            count = max(int(row[0]) if row else 0, 1)
            states = [("loaded" if args.via_writer else "v4 ids", *measure(conn))]
            columns = column_sizes(conn)
            if not args.only_loaded:
                conn.execute(REKEY_V7)
                states.append(("v7 ids", *measure(conn)))
                conn.execute("REINDEX TABLE public.user_activity_events")
                states.append(("rebuilt", *measure(conn)))
    figure("events", count)
    figure("loaded via", "EventWriter" if args.via_writer else "bench.generate (COPY)")
    figure("load time", loaded, "s")
    print_side_by_side(states, count)
    figure("total on disk, as loaded", sum(states[0][1].values()) / 1024 / 1024, "MiB")
    print("  average stored size per row (bytes; share of rows with a value):")
    for name, size, share in columns:
        print(f"    {name:<44} {size:7.1f}  ({share:.0%})")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
