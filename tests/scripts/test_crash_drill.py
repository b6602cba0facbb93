"""The crash drill: SIGKILL `waymark serve` under load, restart it, and every event that was
answered 202 is in the table exactly once (WAYMARK_ACK=commit, the default).

What a SIGKILL does is what an OOM kill, a crashed host or a hard eviction does: no atexit,
no flush. Client threads post batches of 10 events with their own ids (as the hook does)
and record the ids of every batch answered 202; the server's whole process group is killed
at a random moment, restarted, and the table is compared with the record. With
``WAYMARK_ACK=queued`` the same drill loses events (shown once, as the control).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from drill_support import Load, free_port, serving, stored


def drill(db_url: str, tmp_path: Path, *, kills: int, **env: str) -> tuple[set[str], dict[str, int],
                                                                              dict[int, int]]:
    """Run load across ``kills`` SIGKILLs at random moments; return acked ids, what is stored."""
    port = free_port()
    rng = random.Random()
    with Load(port) as load:
        for _ in range(kills):
            with serving(db_url, port, tmp_path / "serve.log", **env):
                time.sleep(rng.uniform(1.0, 2.5))  # the context's exit is the SIGKILL
        with serving(db_url, port, tmp_path / "serve.log", **env):
            time.sleep(1.0)  # the last server is also killed: only what was acked counts
    return load.acked, stored(db_url, load.acked), load.answers


def test_every_event_answered_202_survives_sigkill(db_url: str, tmp_path: Path) -> None:
    acked, rows, answers = drill(db_url, tmp_path, kills=2)
    print(f"crash drill: {len(acked)} events answered 202, answers {answers}")
    assert len(acked) >= 200, answers  # the load really ran across the kills
    lost = acked - set(rows)
    duplicated = {i for i, n in rows.items() if n != 1}
    assert (len(lost), len(duplicated)) == (0, 0), (len(acked), len(lost), answers)


@pytest.mark.skipif(os.environ.get("WAYMARK_DRILL_CONTROL") != "1",
                    reason="the queued-ack control is run by hand: WAYMARK_DRILL_CONTROL=1")
def test_control_queued_ack_loses_events_under_sigkill(db_url: str, tmp_path: Path) -> None:
    acked, rows, answers = drill(db_url, tmp_path, kills=2, WAYMARK_ACK="queued")
    assert len(acked - set(rows)) > 0, (len(acked), answers)
