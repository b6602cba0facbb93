"""The JetStream mode through the production server: 1 app + 1 writer vs 2 apps + 2 writers.

A fresh database and a nats-server of the bench's own (JetStream, file store in a temporary
directory), then N ``waymark serve`` processes (one gunicorn worker each) publishing, and N
``waymark writer`` processes consuming. The load generator (``bench.http_ingestion``'s
threads, spread over the app ports) posts single events, then 100-event batches, for a
fixed time. Printed per configuration: events accepted/s, p50/p99 latency, the CPU seconds
the app, writer and NATS processes used (PostgreSQL's own backends not included), events
per CPU-second, and — once the writers drained the stream — rows stored next to events
accepted. The cores are shared (this machine has 2), so 2+2 cannot double 1+1: events per
CPU-second says whether the work per event stayed the same.

``python -m bench.jetstream [--seconds 10] [--processes 2] [--threads 8]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg

from bench.common import figure, fresh_database, percentile
from bench.http_ingestion import _free_port, _process, serve, stop

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (from /proc)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            total += sum(cpu_seconds(int(child)) for child in children)
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


@contextmanager
def nats_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    with tempfile.TemporaryDirectory(prefix="wm-bench-nats-") as store:
        port = _free_port()
        proc = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            yield f"nats://127.0.0.1:{port}", proc
        finally:
            proc.kill()
            proc.wait()


def writer(url: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    waymark = str(Path(sys.executable).with_name("waymark"))
    return subprocess.Popen([waymark, "writer"], env={**os.environ, "DATABASE_URL": url, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def drive(ports: list[int], kind: str, seconds: float, processes: int,
          threads: int) -> dict[str, Any]:
    """``bench.http_ingestion``'s load, client process p posting to ``ports[p % len]``."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_process,
                         args=(ports[p % len(ports)], kind, seconds, threads, p, queue))
             for p in range(processes)]
    for proc in procs:
        proc.start()
    results = [item for _ in procs for item in queue.get()]
    for proc in procs:
        proc.join()
    statuses: dict[Any, int] = {}
    for _, _, st in results:
        for key, value in st.items():
            statuses[key] = statuses.get(key, 0) + value
    return {"latencies": [ms for lat, _, _ in results for ms in lat],
            "accepted": sum(acc for _, acc, _ in results), "statuses": statuses}


def run_one(args: argparse.Namespace, kind: str, nodes: int) -> float:
    """N apps + N writers on a fresh database and stream; prints figures, returns events/s."""
    with fresh_database("wm_bench_js") as url, nats_server() as (nats_url, nats_proc), \
            ExitStack() as stack:
        env = {"WAYMARK_QUEUE_URL": nats_url, "WAYMARK_STREAM_NAME": "BENCH"}
        ports = [_free_port() for _ in range(nodes)]
        apps = []
        for port in ports:
            app = serve(url, port, 1, args.server_threads, extra_env=env)
            apps.append(app)
            stack.callback(stop, app)
        writers = [writer(url, env) for _ in range(nodes)]
        for proc in writers:
            stack.callback(proc.wait, 30)
            stack.callback(proc.terminate)
        before = sum(cpu_seconds(p.pid) for p in (*apps, *writers, nats_proc))
        result = drive(ports, kind, args.seconds, args.processes, args.threads)
        stored = _wait_stored(url, result["accepted"])
        used = sum(cpu_seconds(p.pid) for p in (*apps, *writers, nats_proc)) - before
    name = f"{kind} [{nodes} app + {nodes} writer]"
    rate = result["accepted"] / args.seconds
    print(f"  /activity/{kind}, JetStream, {nodes} × `waymark serve --workers 1` + {nodes} × "
          f"`waymark writer` ({args.processes}×{args.threads} client threads)", flush=True)
    figure(f"{name}: events accepted/s", rate)
    figure(f"{name}: latency p50", percentile(result["latencies"], 50), "ms")
    figure(f"{name}: latency p99", percentile(result["latencies"], 99), "ms")
    figure(f"{name}: CPU seconds (apps, writers, nats)", used, "s")
    figure(f"{name}: events per CPU-second", result["accepted"] / used if used else 0.0)
    figure(f"{name}: answers", ", ".join(f"{k}: {v:,}" for k, v in sorted(
        result["statuses"].items(), key=str)))
    figure(f"{name}: stored / accepted", f"{stored:,} / {result['accepted']:,}"
           + (" (equal)" if stored == result["accepted"] else " (DIFFERENT)"))
    return float(rate)


def _wait_stored(url: str, accepted: int, timeout: float = 120.0) -> int:
    """Rows stored once the writers caught up (or the count when ``timeout`` ran out)."""
    deadline = time.monotonic() + timeout
    stored, last_change, last = 0, time.monotonic(), -1
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM user_activity_events").fetchone()
            stored = int(row[0]) if row else 0
            if stored >= accepted:
                return stored
            if stored != last:
                last, last_change = stored, time.monotonic()
            elif time.monotonic() - last_change > 15:
                break  # no progress for 15 s
            time.sleep(0.2)
    return stored


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.jetstream")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--server-threads", type=int, default=8)
    args = parser.parse_args(argv)
    for kind in ("track", "batch"):
        rates = {nodes: run_one(args, kind, nodes) for nodes in (1, 2)}
        figure(f"{kind}: events/s 2+2 / 1+1", rates[2] / rates[1] if rates[1] else 0.0)


if __name__ == "__main__":
    main(sys.argv[1:])
