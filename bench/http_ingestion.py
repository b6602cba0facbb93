"""HTTP ingestion through the production server: ``waymark serve`` (gunicorn) on loopback.

A fresh database, ``waymark serve`` in a subprocess, then a Python load generator (processes
× threads, each thread one keep-alive ``http.client`` connection) posting for a fixed time:
first single events to ``/activity/track``, then 100-event batches to ``/activity/batch``.
Printed: requests/s, events/s, p50/p99 latency, and — after a graceful shutdown (SIGTERM,
which flushes every worker's writer) — the rows stored next to the events accepted.
Each is run for both acknowledgement modes, interleaved: ``WAYMARK_ACK=commit`` (the
default: 202 once committed) and ``queued`` (202 once in the in-process queue), and the
durable/queued ratio of events/s is printed per endpoint.

``python -m bench.http_ingestion [--seconds 10] [--processes 2] [--threads 8] [--workers 2]
[--acks commit,queued] [--kinds track,batch] [--grid 8:8,32:32] [--rounds 3]``

``--grid`` lists configurations as ``server threads:client threads per process`` (instead of
``--server-threads``/``--threads``) and ``--rounds`` repeats the whole sweep, every run
interleaved with the others: at the end each (endpoint, mode, configuration) is given its
median over the rounds, and each mode at its best configuration is set against the other
at its best. Runs of one configuration minutes apart vary (queued single events 2,083–2,614
events/s on the 2-core machine of bench/README.md), so one run per mode settles no ratio.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.common import figure, fresh_database, percentile

UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/120.0.0.0 Safari/537.36")
PAGES = ("/", "/quests", "/quests/q1", "/badges", "/tutor", "/community", "/profile")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _body(kind: str, n: int) -> bytes:
    def event(i: int) -> dict[str, Any]:
        return {"event_type": "page_view", "page_path": PAGES[i % len(PAGES)],
                "load_time_ms": 120 + i % 300, "event_data": {"n": i}}

    if kind == "track":
        return json.dumps(event(n)).encode()
    return json.dumps({"events": [event(n + i) for i in range(100)]}).encode()


def _thread(port: int, kind: str, until: float, out: list[Any], seed: int) -> None:
    path = "/api/analytics/activity/" + kind
    headers = {"Content-Type": "application/json", "User-Agent": UA,
               "X-Forwarded-For": f"10.9.{seed % 250}.{seed // 250 % 250}"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies: list[float] = []
    accepted = 0
    statuses: dict[int | str, int] = {}  # an HTTP status, or "error" for a broken connection
    n = 0
    while time.perf_counter() < until:
        body = _body(kind, n)
        n += 1
        started = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            statuses["error"] = statuses.get("error", 0) + 1
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if response.status == 202:
            accepted += json.loads(payload)["accepted"]
    conn.close()
    out.append((latencies, accepted, statuses))


def _process(port: int, kind: str, seconds: float, threads: int, seed: int,
             queue: Any) -> None:
    until = time.perf_counter() + seconds
    out: list[Any] = []
    workers = [threading.Thread(target=_thread, args=(port, kind, until, out, seed * 100 + i))
               for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    queue.put(out)


def load(port: int, kind: str, seconds: float, processes: int, threads: int) -> dict[str, Any]:
    """Drive ``kind`` (track|batch) for ``seconds``; latencies, accepted events, statuses."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_process, args=(port, kind, seconds, threads, p, queue))
             for p in range(processes)]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    results = [item for _ in procs for item in queue.get()]
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - started
    latencies = [ms for lat, _, _ in results for ms in lat]
    statuses: dict[Any, int] = {}
    for _, _, st in results:
        for key, value in st.items():
            statuses[key] = statuses.get(key, 0) + value
    return {"elapsed": min(elapsed, seconds + 1), "seconds": seconds, "latencies": latencies,
            "accepted": sum(acc for _, acc, _ in results), "statuses": statuses}


def serve(url: str, port: int, workers: int, threads: int, ack: str = "commit",
          extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``waymark serve`` on loopback, waiting until its health check answers."""
    env = {**os.environ, "DATABASE_URL": url, "WAYMARK_JWT_SECRET": "h" * 40,
           "WAYMARK_ACK": ack, **(extra_env or {})}
    waymark = str(Path(sys.executable).with_name("waymark"))
    proc = subprocess.Popen(
        [waymark, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
         "--threads", str(threads), "--no-access-log"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/analytics/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("waymark serve did not become healthy within 60 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Graceful shutdown: gunicorn stops its workers, whose writers flush at exit."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def main(argv: list[str]) -> None:
    """Print the throughput of single and batch ingestion and rows stored vs accepted."""
    parser = argparse.ArgumentParser(prog="python -m bench.http_ingestion")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server-threads", type=int, default=8)
    parser.add_argument("--acks", default="commit,queued",
                        help="acknowledgement modes to compare, in order")
    parser.add_argument("--kinds", default="track,batch", help="endpoints, in order")
    parser.add_argument("--grid", default="",
                        help="configurations SERVER_THREADS:CLIENT_THREADS, comma-separated")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    grid = [tuple(int(n) for n in pair.split(":")) for pair in args.grid.split(",") if pair] \
        or [(args.server_threads, args.threads)]
    kinds, acks = args.kinds.split(","), args.acks.split(",")
    rates: dict[tuple[str, str, tuple[int, ...]], list[float]] = {}
    for _ in range(args.rounds):
        for kind in kinds:
            for config in grid:
                args.server_threads, args.threads = config
                for ack in acks:
                    rates.setdefault((kind, ack, config), []).append(run_one(args, kind, ack))
    for kind in kinds:
        best: dict[str, float] = {}
        for config in grid:
            medians = {ack: statistics.median(rates[(kind, ack, config)]) for ack in acks}
            for ack, median in medians.items():
                best[ack] = max(best.get(ack, 0.0), median)
            label = f"{config[0]} server × {args.processes * config[1]} client threads"
            if len(grid) > 1 or args.rounds > 1:
                for ack in acks:
                    figure(f"{kind} [{ack}], {label}: median of {args.rounds}",
                           medians[ack], "events/s")
            if medians.get("queued") and "commit" in medians:
                figure(f"{kind}, {label}: events/s durable (commit) / queued",
                       medians["commit"] / medians["queued"])
        if len(grid) > 1 and best.get("queued") and "commit" in best:
            figure(f"{kind}: each mode at its best: durable / queued",
                   f"{best['commit']:,.0f} / {best['queued']:,.0f} = "
                   f"{best['commit'] / best['queued']:.2f}")


def run_one(args: argparse.Namespace, kind: str, ack: str) -> float:
    """One endpoint in one mode on a fresh database; prints its figures, returns events/s."""
    with fresh_database("wm_bench_http") as url:
        port = _free_port()
        proc = serve(url, port, args.workers, args.server_threads, ack)
        try:
            result = load(port, kind, args.seconds, args.processes, args.threads)
        finally:
            stop(proc)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM user_activity_events").fetchone()
        stored = int(row[0]) if row else 0
    requests = len(result["latencies"])
    print(f"  /activity/{kind}, WAYMARK_ACK={ack} ({args.processes}×{args.threads} client "
          f"threads, {args.workers} gunicorn workers × {args.server_threads} threads)",
          flush=True)
    name = f"{kind} [{ack}]"
    figure(f"{name}: requests/s", requests / result["seconds"])
    figure(f"{name}: events accepted/s", result["accepted"] / result["seconds"])
    figure(f"{name}: latency p50", percentile(result["latencies"], 50), "ms")
    figure(f"{name}: latency p99", percentile(result["latencies"], 99), "ms")
    figure(f"{name}: answers", ", ".join(f"{k}: {v:,}" for k, v in sorted(
        result["statuses"].items(), key=str)))
    figure(f"{name}: stored / accepted", f"{stored:,} / {result['accepted']:,}"
           + (" (equal)" if stored == result["accepted"] else " (DIFFERENT)"))
    return float(result["accepted"] / result["seconds"])


if __name__ == "__main__":
    main(sys.argv[1:])
