"""``waymark writer``: the JetStream mode's writer processes (docs/ingestion.md "Two modes").

Not a cron job: a long-running worker, like ``waymark serve``. With ``--processes M`` it
starts M writer processes (each a durable pull consumer of the same stream, so messages are
divided between them) and restarts one that dies; SIGTERM stops them all after their batch
in hand is committed and acknowledged.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from multiprocessing.process import BaseProcess
from types import FrameType

import click

from backend.config import Settings
from backend.scripts import runtime
from backend.services.ingest.stream_writer import run_writer

RESTART_DELAY = 1.0


@click.command("writer")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Writer processes to run (each one core's worth of COPY work).")
def writer(processes: int) -> None:
    """Consume the JetStream stream into PostgreSQL (WAYMARK_QUEUE_URL must be set)."""
    settings = runtime.load_settings()
    if not settings.queue_urls:
        raise click.ClickException(
            "WAYMARK_QUEUE_URL is not set: `waymark writer` consumes the JetStream stream "
            "(nats://host:4222); without it `waymark serve` writes in-process")
    url = runtime.database_url(settings)
    if processes == 1:
        run_writer(url, settings)
        return
    _supervise(url, settings, processes)


def _supervise(url: str, settings: Settings, processes: int) -> None:
    """Run ``processes`` writers, restarting any that dies, until SIGTERM or SIGINT."""
    context = multiprocessing.get_context("spawn")  # no inherited threads or sockets
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start() -> BaseProcess:
        child = context.Process(target=run_writer, args=(url, settings), daemon=False)
        child.start()
        return child

    children = [start() for _ in range(processes)]
    click.echo(f"waymark writer: {processes} processes ({', '.join(str(c.pid) for c in children)})")
    while not stopping:
        time.sleep(0.2)
        for index, child in enumerate(children):
            if not child.is_alive() and not stopping:
                click.echo(f"waymark writer: process {child.pid} exited ({child.exitcode}); "
                           "starting another", err=True)
                time.sleep(RESTART_DELAY)
                children[index] = start()
    for child in children:
        if child.pid is not None and child.is_alive():
            child.terminate()  # SIGTERM: the batch in hand is finished first
    for child in children:
        child.join(timeout=30)


COMMANDS = [writer]
