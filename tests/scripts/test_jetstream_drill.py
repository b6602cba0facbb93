"""The JetStream drills: a 3-node NATS cluster, two app servers, two writer processes.

Client threads post batches to both `waymark serve` processes (WAYMARK_QUEUE_URL names all
three nodes; the stream keeps 3 replicas) and record every event id answered 202. Mid-run
one writer process and the stream's leader node are SIGKILLed; a writer is started again.
Then PostgreSQL is crashed and restarted under the same load. At the end every event
answered 202 is in the table exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import nats
import pytest
from drill_support import Load, free_port, own_postgres, serving, stored
from nats_support import Nats, nats_servers
from pg_cluster import Cluster

STREAM = "DRILL"


@pytest.fixture(scope="module")
def own_server() -> Iterator[Cluster]:
    with own_postgres("wm-jsdrill-") as cluster:
        yield cluster


def _env(nats_urls: str) -> dict[str, str]:
    return {"WAYMARK_QUEUE_URL": nats_urls, "WAYMARK_STREAM_NAME": STREAM,
            "WAYMARK_STREAM_REPLICAS": "3", "WAYMARK_ACK_TIMEOUT": "3"}


@contextmanager
def writer(db_url: str, nats_urls: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """One `waymark writer` process (its own group), SIGKILLed at the end if still alive."""
    waymark = Path(sys.executable).with_name("waymark")
    env = {**os.environ, "DATABASE_URL": db_url, **_env(nats_urls)}
    with log.open("ab") as out:
        proc = subprocess.Popen([str(waymark), "writer"], stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    try:
        yield proc
    finally:
        _sigkill(proc)


def _sigkill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


async def _stream_state(urls: str) -> tuple[str | None, int]:
    """The stream's leader node and the messages it still holds."""
    nc = await nats.connect(urls.split(","), connect_timeout=2, max_reconnect_attempts=2)
    try:
        info = await nc.jetstream().stream_info(STREAM)
        leader = info.cluster.leader if info.cluster else None
        return leader, info.state.messages
    finally:
        await nc.close()


def _wait_drained(urls: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if asyncio.run(_stream_state(urls))[1] == 0:
                return
        except (nats.errors.Error, OSError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError("the writers did not drain the stream")


def test_jetstream_cluster_loses_nothing_when_a_writer_a_leader_and_postgresql_die(
        own_server: Cluster, tmp_path: Path) -> None:
    db_url = own_server.url("drill")
    with nats_servers(tmp_path, count=3) as cluster, ExitStack() as stack:
        urls = cluster.urls
        ports = [free_port(), free_port()]
        for index, port in enumerate(ports):
            stack.enter_context(serving(db_url, port, tmp_path / f"app-{index}.log",
                                        **_env(urls)))
        writer_a = stack.enter_context(writer(db_url, urls, tmp_path / "writer-a.log"))
        stack.enter_context(writer(db_url, urls, tmp_path / "writer-b.log"))
        loads = [stack.enter_context(Load(port, threads=2)) for port in ports]

        time.sleep(4.0)
        acked_before = sum(len(load.acked) for load in loads)
        _sigkill(writer_a)  # a writer dies mid-batch: its messages are delivered again
        leader, _ = asyncio.run(_stream_state(urls))
        killed = _kill_node(cluster, leader)
        time.sleep(5.0)
        acked_after_kills = sum(len(load.acked) for load in loads)
        stack.enter_context(writer(db_url, urls, tmp_path / "writer-c.log"))

        own_server.stop("immediate")  # PostgreSQL crashes; the stream keeps accepting
        time.sleep(4.0)
        own_server.start()
        time.sleep(4.0)
        for load in loads:
            load.__exit__(None, None, None)
        _wait_drained(urls)
        time.sleep(1.0)  # the last commit's acknowledgements

    acked = set().union(*(load.acked for load in loads))
    answers = [load.answers for load in loads]
    print(f"jetstream drill: {len(acked)} events answered 202 ({acked_before} before the "
          f"kills, {acked_after_kills - acked_before} between the kills and the database "
          f"crash); leader {leader} ({killed}) and a writer SIGKILLed; answers {answers}")
    assert acked_before >= 100, answers  # the load really ran
    assert len(acked) > acked_after_kills > acked_before, answers  # and it went on
    rows = stored(db_url, acked)
    lost = acked - set(rows)
    duplicated = {i for i, n in rows.items() if n != 1}
    assert (len(lost), len(duplicated)) == (0, 0), (len(acked), len(lost), answers)


def _kill_node(cluster: Nats, name: str | None) -> str:
    for node in cluster.nodes:
        if node.name == name:
            node.kill()
            return f"node {name} killed"
    cluster.nodes[0].kill()
    return f"leader unknown ({name}); node {cluster.nodes[0].name} killed"
