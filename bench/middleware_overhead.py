"""What the tracking middleware costs a host request: a bare route vs the same route with Waymark.

Two Flask apps with the same view, one with ``Waymark(app)`` installed (database reachable,
the writer really writing in the background), driven through each app's WSGI callable by a
loop that never releases the GIL: the worst case for a writer thread in the same process.
Two measurements, each printing p50/p99 (and p99.9) of both and the differences:

* **interleaved**: one process, requests alternating between the two apps, so both see the
  same machine noise. The writer's GIL share then falls on both apps' requests alike and
  the difference is mostly the hooks' own cost;
* **sustained**: blocks of requests to one app only, alternating — the bare app in a
  spawned process where Waymark was never imported, the tracked app here with the writer
  keeping up with its events (flushed between blocks) — so every pause the writer causes
  lands on tracked requests. This is what a CPU-bound host thread sees.

``python -m bench.middleware_overhead [--requests 20000] [--blocks 2] [--writer-paused]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg
from flask import Flask
from werkzeug.test import EnvironBuilder

from backend import Waymark, get_state
from backend.services.ingest.bounded_queue import BoundedQueue
from backend.services.ingest.writer import EventWriter
from bench.common import figure, fresh_database, percentile, timed

UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/120.0.0.0 Safari/537.36")


def host(with_waymark: bool, url: str) -> Flask:
    """The host app: one small JSON route, like a typical API view."""
    app = Flask("host")

    @app.get("/quests/<quest_id>")
    def quest(quest_id: str) -> dict[str, str]:
        return {"quest": quest_id}

    if with_waymark:
        app.config.update(WAYMARK_DATABASE_URL=url, WAYMARK_JWT_SECRET="b" * 40)
        Waymark(app, url_rules={"GET /quests/<quest_id>": "quest_viewed"})
    return app


def caller(app: Flask) -> Callable[[], None]:
    """One request through the WSGI callable, body consumed (what a server would do)."""
    environ = EnvironBuilder(path="/quests/q7", headers=[("User-Agent", UA)]).get_environ()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    def call() -> None:
        body = app.wsgi_app(dict(environ), start_response)  # type: ignore[arg-type]
        for _ in body:
            pass
        getattr(body, "close", lambda: None)()

    return call


def bare_alone(requests: int) -> list[float]:
    """The bare route timed in this process (spawned: no Waymark, no writer thread here)."""
    return timed(caller(host(False, "")), requests, warmup=500)


def interleaved(calls: dict[str, Callable[[], None]], requests: int) -> dict[str, list[float]]:
    """Both apps' latencies, alternating request by request (the order swapped every time)."""
    samples: dict[str, list[float]] = {"bare": [], "waymark": []}
    for _ in range(500):  # warm up both (and the writer's caches and connection)
        calls["bare"]()
        calls["waymark"]()
    for i in range(requests):
        order = ("bare", "waymark") if i % 2 == 0 else ("waymark", "bare")
        for name in order:
            started = time.perf_counter()
            calls[name]()
            samples[name].append((time.perf_counter() - started) * 1000)
    return samples


def report(title: str, samples: dict[str, list[float]], pcts: tuple[float, ...]) -> None:
    """p50/p99/... of both apps and the tracked app's overhead at each."""
    print(title)
    for pct in pcts:
        bare_ms = percentile(samples["bare"], pct)
        tracked_ms = percentile(samples["waymark"], pct)
        figure(f"bare route p{pct:g}", bare_ms, "ms")
        figure(f"with Waymark p{pct:g}", tracked_ms, "ms")
        figure(f"middleware overhead p{pct:g}", tracked_ms - bare_ms, "ms")


def main(argv: list[str]) -> None:
    """Print both measurements (see the module docstring) and the events stored."""
    parser = argparse.ArgumentParser(prog="python -m bench.middleware_overhead")
    parser.add_argument("--requests", type=int, default=20_000,
                        help="requests per app, in each measurement")
    parser.add_argument("--blocks", type=int, default=2,
                        help="sustained: blocks per app (each of --requests / --blocks)")
    parser.add_argument("--writer-paused", action="store_true",
                        help="queue the events but do not write them: the hooks' own cost, "
                             "without the writer thread competing for the GIL")
    args = parser.parse_args(argv)
    block = args.requests // args.blocks
    with fresh_database("wm_bench_middleware") as url, \
            multiprocessing.get_context("spawn").Pool(1) as pool:
        bare, tracked = host(False, url), host(True, url)
        writer = get_state(tracked).writer
        assert isinstance(writer, EventWriter), "the in-process mode (no WAYMARK_QUEUE_URL)"
        if args.writer_paused:
            writer.autostart = False
            writer._items = BoundedQueue(10 * args.requests)  # noqa: SLF001 - room for every event
        mixed = interleaved({"bare": caller(bare), "waymark": caller(tracked)}, args.requests)
        if not args.writer_paused:
            writer.flush(120)
        sustained: dict[str, list[float]] = {"bare": [], "waymark": []}
        p99s: dict[str, list[float]] = {"bare": [], "waymark": []}
        for _ in range(args.blocks):
            for name in ("bare", "waymark"):
                if name == "bare":
                    got = pool.apply(bare_alone, (block,))
                else:
                    got = timed(caller(tracked), block, warmup=500)
                    if not args.writer_paused:
                        writer.flush(120)  # the next bare block runs without the writer
                sustained[name] += got
                p99s[name].append(percentile(got, 99))
        writer.start()
        left = writer.flush(120)
        stats = writer.stats()
        tracked.extensions["waymark"].close()
        with psycopg.connect(url) as conn:
            stored = conn.execute("SELECT count(*) FROM user_activity_events").fetchone()
    figure("requests per app, per measurement", args.requests)
    report("interleaved, one process:", mixed, (50, 99))
    report(f"sustained, {args.blocks} blocks of {block:,} per app, bare in its own process:",
           sustained, (50, 99, 99.9))
    figure("p99 overhead, median of the blocks' p99s", statistics.median(p99s["waymark"])
           - statistics.median(p99s["bare"]), "ms")
    figure("events recorded (stored / accepted)",
           f"{stored[0] if stored else 0:,} / {stats['accepted']:,} (unwritten {left})")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
