"""``python -m bench.exports --events 1000000``: the warehouse export against raw COPY TO.

What: a database with N demo-like events (bench.generate), then, alternated, rounds of
(a) the raw floor — ``COPY (SELECT <the export's columns> FROM user_activity_events) TO
STDOUT`` read to the end by the client and thrown away — and (b) ``waymark
warehouse-export``'s ``export()`` of the same rows to Parquet (zstd) in a fresh directory,
i.e. reading them with a server-side cursor and writing day files. Prints rows/s of both,
per round and as medians, and their ratio (the goal: export ≥ 0.5× raw COPY). Benchmarks
print figures and never pass or fail on time.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from backend.services.exports import warehouse
from bench.common import figure, fresh_database
from bench.generate import generate

TABLE = "user_activity_events"


def raw_copy(url: str) -> tuple[int, float]:
    """Rows and seconds of COPY … TO STDOUT over the same columns, read by the client."""
    columns = sql.SQL(", ").join(
        sql.SQL(warehouse.KINDS[kind].select.format(c="{}")).format(sql.Identifier(name))
        for name, kind in warehouse.TABLES[TABLE])
    query = sql.SQL("COPY (SELECT {} FROM public.{}) TO STDOUT").format(
        columns, sql.Identifier(TABLE))
    started = time.perf_counter()
    size = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur, cur.copy(query) as copy:
        for block in copy:
            size += len(block)
    seconds = time.perf_counter() - started
    with psycopg.connect(url) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM public.{}").format(
            sql.Identifier(TABLE))).fetchone()
    return (int(row[0]) if row else 0), seconds


def export_once(url: str) -> tuple[int, float, int]:
    """Rows, seconds and bytes written of one full export to a fresh directory."""
    target = Path(tempfile.mkdtemp(prefix="wm-bench-export-"))
    try:
        with psycopg.connect(url) as conn:
            conn.execute("DELETE FROM waymark.export_watermarks")
            conn.commit()
            started = time.perf_counter()
            stats = warehouse.export(conn, target, fmt="parquet", now=datetime.now(UTC),
                                     settle=timedelta(0))
            seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in target.rglob("*.parquet"))
        return stats.rows[TABLE], seconds, size
    finally:
        shutil.rmtree(target, ignore_errors=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.exports", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    with fresh_database("waymark_bench_exports", keep=args.keep) as url:
        started = time.perf_counter()
        generate(url, args.events, students=max(200, args.events // 500), days=90)
        print(f"generated {args.events:,} events in {time.perf_counter() - started:.0f} s")
        raw_rates, export_rates = [], []
        for round_no in range(1, args.rounds + 1):
            rows, seconds = raw_copy(url)
            raw_rates.append(rows / seconds)
            exported, export_seconds, size = export_once(url)
            export_rates.append(exported / export_seconds)
            print(f"round {round_no}: raw COPY {rows / seconds:,.0f} rows/s, export "
                  f"{exported / export_seconds:,.0f} rows/s ({exported:,} rows, "
                  f"{size / exported:.1f} bytes/row of Parquet), ratio "
                  f"{(exported / export_seconds) / (rows / seconds):.2f}", flush=True)
        raw, exp = statistics.median(raw_rates), statistics.median(export_rates)
        figure("raw COPY TO, median", raw, "rows/s")
        figure("warehouse export (Parquet), median", exp, "rows/s")
        figure("ratio of the medians", exp / raw)
        ratios = [e / r for e, r in zip(export_rates, raw_rates, strict=True)]
        figure("median of the rounds' ratios (goal ≥ 0.5)", statistics.median(ratios))


if __name__ == "__main__":
    main(sys.argv[1:])
