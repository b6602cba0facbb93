"""What every benchmark shares: a fresh, migrated database and plain-text figures.

The server is ``BENCH_DATABASE_URL`` (or ``TEST_DATABASE_URL``), a superuser URL; without
either an embedded PostgreSQL is started under ``.waymark/bench``. Benchmarks print
figures and never pass or fail on time.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from backend import migrations


def server_url() -> str:
    """A superuser URL for the benchmark server."""
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    from backend.db import start_embedded

    return start_embedded(Path(".waymark") / "bench")


def create_database(server: str, name: str) -> str:
    """(Re)create the empty database ``name`` on ``server``, migrated; returns its URL."""
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(server, dbname=name)
    migrations.migrate(url)
    return url


def drop_database(server: str, name: str) -> None:
    """Drop the benchmark database ``name`` (its connections too)."""
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def fresh_database(name: str, *, keep: bool = False) -> Iterator[str]:
    """A new, migrated database called ``name`` (dropped afterwards unless ``keep``)."""
    server = server_url()
    url = create_database(server, name)
    try:
        yield url
    finally:
        if not keep:
            drop_database(server, name)


def timed(call: Callable[[], object], rounds: int, warmup: int = 2) -> list[float]:
    """Milliseconds of each of ``rounds`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(samples: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile (0–100) by linear interpolation."""
    if not samples:
        return float("nan")
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=1000, method="inclusive")[int(pct * 10) - 1]


def figure(label: str, value: float | int | str, unit: str = "") -> None:
    """Print one figure as an aligned ``label  value unit`` line."""
    shown = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}" if isinstance(
        value, int) else value
    print(f"  {label:<48} {shown} {unit}".rstrip(), flush=True)
