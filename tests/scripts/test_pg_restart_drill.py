"""The database drill: PostgreSQL crashes and restarts under load (single-node mode).

`waymark serve` runs against a PostgreSQL of the test's own (tests/pg_cluster.py), with
client threads posting batches and recording every event id answered 202. The server is
stopped with ``pg_ctl -m immediate`` (a crash: no checkpoint, recovery at the next start)
and started again a few seconds later. While it is down, ingestion must answer 503 with
``Retry-After`` (never 202 for something not stored); after it is back, 202 again; and
every event answered 202, before, during or after, is in the table exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from drill_support import Load, free_port, own_postgres, serving, stored
from pg_cluster import Cluster

OUTAGE_SECONDS = 4.0


@pytest.fixture(scope="module")
def own_server() -> Iterator[Cluster]:
    with own_postgres("wm-restart-") as cluster:
        yield cluster


def test_nothing_answered_202_is_lost_when_postgresql_restarts(own_server: Cluster,
                                                               tmp_path: Path) -> None:
    db_url = own_server.url("drill")
    port = free_port()
    with serving(db_url, port, tmp_path / "serve.log", WAYMARK_ACK_TIMEOUT="1.5"), \
            Load(port) as load:
        time.sleep(1.5)
        before_outage = len(load.acked)
        own_server.stop("immediate")
        down_at = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        during = dict(load.answers)
        own_server.start()
        print(f"restart drill: down {time.monotonic() - down_at:.1f} s")
        acked_at_restart = len(load.acked)
        time.sleep(4.0)
    answers, acked = load.answers, load.acked
    print(f"restart drill: {len(acked)} events answered 202 ({before_outage} before the "
          f"outage, {len(acked) - acked_at_restart} after it), answers {answers}")
    assert before_outage >= 100, answers  # the load really ran
    assert during.get(503, 0) > 0, during  # the outage was answered 503, not 202
    assert len(acked) > acked_at_restart, answers  # and ingestion came back
    rows = stored(db_url, acked)
    lost = acked - set(rows)
    duplicated = {i for i, n in rows.items() if n != 1}
    assert (len(lost), len(duplicated)) == (0, 0), (len(acked), len(lost), answers)
