"""``python -m bench.poison_batch``: what 200 poison rows among 4,000 events cost, before and after.

The red-team finding (#19, item 2): a NUL that appears only after percent-decoding (a
``/collect`` URL whose ``utm_source=%00…``) passed validation, and PostgreSQL refused the
row (22021). The writer then split the batch in halves until the bad row was alone, and
dead-lettered it: many small transactions instead of a few, for everyone's events.

Side by side in one run, each on a fresh database:

* **before** — what the writer had to do when validation let such rows through: 4,000
  ``/collect``-shaped events, 200 of them with a raw NUL in ``utm_source``, handed to the
  writer as the old validation queued them (the writer's split-and-dead-letter path is
  unchanged, so this is its real cost);
* **after** — today ``/collect`` answers those 200 requests 400 (counted through the real
  endpoint) and never queues them: the writer gets the 3,800 others.

Prints, for both: transactions committed (PostgreSQL's ``xact_commit``), seconds until
every accepted event is stored, rows stored, dead letters. Benchmarks print figures and
never pass or fail on time.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import psycopg
from flask.testing import FlaskClient

from backend import create_app
from backend.config import Settings
from backend.services.ingest import items
from backend.services.ingest.writer import EventWriter
from bench.common import figure, fresh_database

EVENTS, POISON = 4000, 200
UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/124.0 Safari/537.36")


def is_poison(i: int) -> bool:
    return i % (EVENTS // POISON) == 7


def commits(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT xact_commit FROM pg_stat_database "
                           "WHERE datname = current_database()").fetchone()
    return int(row[0]) if row else 0


def stored(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        events = conn.execute("SELECT count(*) FROM user_activity_events").fetchone()
        dead = conn.execute("SELECT count(*) FROM waymark.dead_letters").fetchone()
    return (int(events[0]) if events else 0), (int(dead[0]) if dead else 0)


def queued_rows(poison: bool) -> list[dict[str, Any]]:
    """The /collect events as the endpoint queues them (with the poison rows or without)."""
    received = datetime.now(UTC)
    queued = []
    for i in range(EVENTS):
        if is_poison(i) and not poison:
            continue
        row = items.event_row("landing_visit", received)
        row.update(page_path="/welcome", utm_source="news\x00letter" if is_poison(i) else "news")
        queued.append({"kind": "event", "row": row, "received_at": received, "user_id": None,
                       "client": {"ip": f"10.0.{i % 250}.7", "ua": UA,
                                  "origin": "https://app.example", "token": None}})
    return queued


def through_writer(url: str, queued: list[dict[str, Any]]) -> dict[str, float]:
    """Transactions and seconds from the first submit until everything is stored."""
    writer = EventWriter(url, Settings(queue_size=EVENTS + 1), autostart=False)
    for item in queued:
        writer.submit(item)
    first = commits(url)
    started = time.perf_counter()
    writer.start()
    left = writer.flush(600)
    seconds = time.perf_counter() - started
    writer.close(5)
    if left:
        raise RuntimeError(f"{left} events were not written")
    rows, dead = stored(url)
    return {"commits": commits(url) - first, "seconds": seconds, "rows": rows, "dead": dead}


def refused_today(url: str) -> int:
    """How many of the poison requests ``/collect`` answers 400 today (none is queued)."""
    app = create_app({"WAYMARK_DATABASE_URL": url, "WAYMARK_JWT_SECRET": "h" * 40})
    client: FlaskClient = app.test_client()
    refused = 0
    for i in range(EVENTS):
        if is_poison(i):
            answer = client.post("/api/analytics/collect", json={
                "url": f"https://app.example/welcome?utm_source={quote('news' + chr(0))}"},
                headers={"User-Agent": UA})
            refused += answer.status_code == 400
    app.extensions["waymark"].close()
    return refused


def main(argv: list[str]) -> None:
    argparse.ArgumentParser(prog="python -m bench.poison_batch").parse_args(argv)
    results: dict[str, dict[str, Any]] = {}
    for name, poison in (("before (200 queued)", True), ("after (200 refused)", False)):
        with fresh_database("wm_bench_poison") as url:
            results[name] = through_writer(url, queued_rows(poison))
    with fresh_database("wm_bench_poison") as url:
        refused = refused_today(url)
    print(f"  {EVENTS:,} /collect events, {POISON} with a NUL in utm_source once decoded; "
          f"today /collect answers {refused} of the {POISON} with 400", flush=True)
    for name, r in results.items():
        figure(f"{name}: transactions committed", r["commits"])
        figure(f"{name}: seconds until stored", r["seconds"], "s")
        figure(f"{name}: rows stored / dead letters", f"{r['rows']:,} / {r['dead']:,}")


if __name__ == "__main__":
    main(sys.argv[1:])
