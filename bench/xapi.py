"""``python -m bench.xapi --events 20000``: `waymark xapi-sync` against a real LRS (Ralph).

What: a fresh database with N mapped learning events (quest, badge, tutor, sign-in; 200
learners), Ralph on loopback (file-system backend, ``make service-deps``), then, side by side in
one run: (a) the LRS's own intake — the same statements, built beforehand, POSTed in batches
of 500 to a fresh Ralph — and (b) ``xapi.sync``: reading the rows, building the statements
and POSTing them. Prints statements/s of both and their ratio (how much the sync costs over
what the LRS can take in), then the time to void one forgotten learner's statements.
Benchmarks print figures and never pass or fail on time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from backend.config import XapiSettings
from backend.db import Database
from backend.services.exports import xapi
from backend.services.privacy.forget import forget_user
from bench.common import figure, fresh_database
from bench.stand_ins import RunningLrs, running_lrs

HOME = "https://school.example"
LEARNERS = 200
SEED = """
INSERT INTO user_activity_events (event_id, event_type, event_category, occurred_at, user_id,
                                  event_data)
SELECT gen_random_uuid(), k.event_type, k.category::event_category, %(start)s + i * interval '1 second',
       ('00000000-0000-4000-8000-' || lpad(to_hex(i %% %(learners)s), 12, '0'))::uuid,
       jsonb_build_object('quest_id', 'q' || (i %% 40), 'badge_id', 'b' || (i %% 12),
                          'xp', 10, 'pillar', 'stem')
FROM generate_series(1, %(n)s) AS i
JOIN (VALUES (0, 'quest_started', 'quest'), (1, 'quest_completed', 'quest'),
             (2, 'badge_earned', 'badge'), (3, 'tutor_message_sent', 'tutor'),
             (4, 'login_success', 'auth')) AS k(slot, event_type, category)
  ON k.slot = i %% 5
"""


def settings(lrs: RunningLrs) -> XapiSettings:
    return XapiSettings(endpoint=lrs.endpoint, authorization=lrs.authorization, home_page=HOME)


def intake(lrs: RunningLrs, url: str) -> tuple[int, float]:
    """The LRS alone: the rows' statements built first, then only the POSTs are timed."""
    client = xapi.Lrs(settings(lrs))
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT event_id, user_id, event_type::text, occurred_at, event_data "
                    "FROM user_activity_events")
        columns = [c.name for c in cur.description or ()]
        built = [xapi.statement(dict(zip(columns, r, strict=True)), b"k" * 32, HOME)
                 for r in cur.fetchall()]
    statements = [s for s in built if s is not None]
    started = time.perf_counter()
    for i in range(0, len(statements), xapi.BATCH):
        client.post(statements[i:i + xapi.BATCH])
    return len(statements), time.perf_counter() - started


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.xapi")
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args(argv)
    with fresh_database("wm_bench_xapi") as url, tempfile.TemporaryDirectory() as tmp:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SEED, {"n": args.events, "learners": LEARNERS,
                                "start": datetime.now(UTC) - timedelta(days=2)})
        print(f"  {args.events:,} events of {LEARNERS} learners; Ralph 5.1.0 (fs backend) "
              "on loopback; batches of 500", flush=True)
        with running_lrs(Path(tmp) / "a") as lrs:
            count, seconds = intake(lrs, url)
        raw = count / seconds
        figure("LRS intake alone (statements built beforehand): statements/s", raw)
        with running_lrs(Path(tmp) / "b") as lrs, psycopg.connect(url) as conn:
            started = time.perf_counter()
            stats = xapi.sync(conn, xapi.Lrs(settings(lrs)), HOME, now=datetime.now(UTC),
                              settle=timedelta(0))
            synced = stats.statements / (time.perf_counter() - started)
            figure("xapi-sync (read, build, POST): statements/s", synced)
            figure("xapi-sync / LRS intake", synced / raw)
            db = Database(url, min_size=1, max_size=2, name="bench-xapi")
            db.open(wait=True)
            try:
                forget_user(db, uuid.UUID("00000000-0000-4000-8000-000000000001"),
                            now=datetime.now(UTC))
            finally:
                db.close()
            started = time.perf_counter()
            voided = xapi.sync(conn, xapi.Lrs(settings(lrs)), HOME, now=datetime.now(UTC),
                               settle=timedelta(0))
            figure(f"void one learner's {voided.voided:,} statements (query + POST)",
                   (time.perf_counter() - started) * 1000, "ms")


if __name__ == "__main__":
    main(sys.argv[1:])
