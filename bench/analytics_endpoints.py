"""p50/p95 of every analytics endpoint at 1M (and optionally 10M) demo-like events.

``python -m bench.analytics_endpoints`` measures at 1M events; ``--large`` adds 10M
events (generating them takes several minutes) and prints how p95 grows from 1M to
10M. Each size gets its own database (``wm_bench_analytics_<events>``); ``--reuse``
keeps and reuses it when it already holds that many events. The jobs have run, as in
production: ``waymark rollup`` for every closed day and today's closed hours, and
``waymark score`` today (so
at-risk-students answers from stored assessments; ``live=true`` is measured too). The
requests go through the whole stack: Flask test client, token check, ``as_user`` (RLS)
and JSON. Per-user endpoints are called by the students themselves, the rest by an
admin.

The generator puts today's events before (generation time − 1 h), so when the bench
runs, the page views since the last 10-minute mark — what page-views reads live beside
the prefix the job keeps (``page_prefix``) — are few or none. Two rows set the prefix
back as a run of the job would have left it, so that page views up to the latest one are
merged live (the prefix is restored afterwards):

* ``page-views, busiest 15 min live``: the worst case with the job every
  ``PREFIX_STEP`` at 5 minutes past each mark (render.yaml) — just before a run, one
  step plus the 5 minutes are live. The demo's last minutes are quieter than its busiest
  ones, so the prefix is set back until as many page views are live as today's busiest
  15 minutes hold (a window starting at any 5-minute mark); the prefix's own recompute
  time is printed too;
* ``page-views, prefix at the last hour``: what an hourly run left (the start of the
  latest page view's hour: 0–60 minutes live, depending on when the data was made).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import jwt
import psycopg
from flask.testing import FlaskClient
from psycopg.conninfo import make_conninfo

from backend import create_app, migrations
from backend.config import Settings
from backend.db import Database
from backend.scripts import demo_data
from backend.scripts.analytics_jobs import roll_up, roll_up_hours, score_all
from backend.services.analytics import page_prefix
from bench.common import (
    create_database,
    drop_database,
    figure,
    percentile,
    server_url,
    timed,
)
from bench.generate import generate

SECRET = "waymark-bench-secret-at-least-32-bytes-long!"
STUDENTS_PER_EVENTS = 500  # one student per this many events (2,000 at 1M)
DAYS = 90
LIVE_ROUNDS = 3  # scoring every student live takes seconds: a few rounds suffice

ADMIN_ENDPOINTS = [
    "/api/analytics/at-risk-students?days=30&threshold=0.7",
    "/api/analytics/page-views?days=30",
    "/api/analytics/popular-quests?days=30&limit=10",
    "/api/analytics/errors?days=7",
    "/api/analytics/event-counts?days=30",
    "/api/analytics/attribution?days=30",
]
STUDENT_ENDPOINTS = [
    "/api/analytics/engagement/{user}?days=30",
    "/api/analytics/journey/{user}",
    "/api/analytics/event-counts?days=30",
]


def token(user_id: str, role: str) -> str:
    """A Supabase-style access token for the benchmark's secret."""
    now = int(time.time())
    return jwt.encode({"sub": user_id, "aud": "authenticated", "role": "authenticated",
                       "iat": now, "exp": now + 3600, "app_metadata": {"role": role}},
                      SECRET, algorithm="HS256")


def _count(url: str) -> int:
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM user_activity_events").fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return -1


@contextmanager
def _database(events: int, reuse: bool) -> Any:
    """A migrated database holding ``events`` demo-like events, rolled up."""
    server = server_url()
    name = f"wm_bench_analytics_{events}"
    url = make_conninfo(server, dbname=name)
    if not (reuse and _count(url) == events):
        create_database(server, name)
        started = time.perf_counter()
        generate(url, events, students=max(300, events // STUDENTS_PER_EVENTS), days=DAYS)
        figure(f"generate {events:,} events", time.perf_counter() - started, "s")
    else:
        migrations.migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:  # in case the load predates this
        conn.execute(demo_data.SUMMARIZE_BRIN_SQL)
        # What autovacuum does in production (it may be off on a bench server): statistics
        # and the visibility map, without which no index-only scan (attribution, 0034)
        # happens; a migration that rewrites the table (e.g. 0060) clears the map.
        conn.execute("VACUUM (ANALYZE) public.user_activity_events")
    db = Database(url, min_size=1, max_size=2, name="bench-rollup")
    db.open(wait=True)
    try:
        started = time.perf_counter()
        days, _ = roll_up(db, now=datetime.now(UTC), lookback_days=DAYS + 5)
        hours = roll_up_hours(db, now=datetime.now(UTC))
        figure(f"rollup ({days} days, {hours} hours of today to do)",
               time.perf_counter() - started, "s")
        started = time.perf_counter()
        scored = score_all(db, now=datetime.now(UTC), batch_size=500,
                           history_days=Settings.anonymize_after_days)
        figure(f"waymark score ({scored['students']:,} students)",
               time.perf_counter() - started, "s")
        with db.connection() as conn:
            conn.execute("ANALYZE public.page_view_analytics")
    finally:
        db.close()
    with psycopg.connect(url, autocommit=True) as conn:  # today's assessments, as above
        conn.execute("VACUUM (ANALYZE) public.learning_journey_events")
        _vacuum_rollups(conn)
    try:
        yield url
    finally:
        if not reuse:
            drop_database(server, name)


#: Rewritten by every run of the rollup job (today's page-view prefix) or once per day:
#: autovacuum would clean and analyze them soon after; the bench server may not run it.
ROLLUP_TABLES = ("page_view_prefix", "page_view_prefix_pages", "page_view_prefix_sessions",
                 "page_view_prefix_visitors", "campaign_daily")


def _vacuum_rollups(conn: psycopg.Connection[Any]) -> None:
    """VACUUM (ANALYZE) the rollup tables (autocommit connection), as autovacuum would."""
    conn.execute("VACUUM (ANALYZE) " + ", ".join(f"public.{t}" for t in ROLLUP_TABLES))


def _students(url: str, count: int) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT user_id FROM user_activity_events WHERE event_type = 'quest_viewed' "
            "AND user_id IS NOT NULL GROUP BY user_id ORDER BY user_id").fetchall()
    ids = [str(r[0]) for r in rows]
    return random.Random(7).sample(ids, min(count, len(ids)))


def measure(url: str, rounds: int) -> dict[str, tuple[float, float]]:
    """p50/p95 in ms per endpoint on the database at ``url``."""
    app = create_app({"WAYMARK_DATABASE_URL": url, "WAYMARK_JWT_SECRET": SECRET,
                      "TESTING": True, "WAYMARK_POOL_MAX_SIZE": 4})
    client: FlaskClient = app.test_client()
    admin = {"Authorization": f"Bearer {token(str(uuid.uuid4()), 'admin')}"}
    results: dict[str, tuple[float, float]] = {}
    try:
        for path in ADMIN_ENDPOINTS:
            samples = timed(partial(_get, client, path, admin), rounds)
            results[f"admin {path.split('?')[0].rsplit('/', 1)[-1]}"] = _summary(samples)
        for name, span in (("busiest 15 min live", WORST_LIVE),
                           ("prefix at the last hour", None)):
            behind = _page_views_prefix_behind(url, client, admin, rounds, span)
            if behind:
                results[f"admin page-views, {name}"] = behind[1]
                print(f"  (page-views, {name}: {behind[0]})", flush=True)
        live = "/api/analytics/at-risk-students?days=30&threshold=0.7&live=true"
        samples = timed(lambda: _ok(client.get(live, headers=admin)), LIVE_ROUNDS, warmup=1)
        results["admin at-risk-students live=true"] = _summary(samples)
        students = _students(url, rounds)
        for path in STUDENT_ENDPOINTS:
            turn = iter(students * 3)

            def call(p: str = path, turn: Any = turn) -> None:
                user = next(turn)
                headers = {"Authorization": f"Bearer {token(user, 'student')}"}
                _ok(client.get(p.format(user=user), headers=headers))

            samples = timed(call, len(students))
            name = path.split("?")[0].replace("/{user}", "").rsplit("/", 1)[-1]
            results[f"student {name}"] = _summary(samples)
    finally:
        app.extensions["waymark"].close()
    return results


LATEST_PAGE_VIEW_SQL = """
SELECT max(occurred_at) AS latest FROM public.user_activity_events
WHERE event_type = 'page_view' AND occurred_at >= %(today)s AND occurred_at <= %(now)s
"""

PAGE_VIEWS_SINCE_SQL = """
SELECT count(*) AS n FROM public.user_activity_events
WHERE event_type = 'page_view' AND occurred_at >= %(since)s AND occurred_at <= %(now)s
"""


#: Just before a run of the job (every PREFIX_STEP, 5 minutes past each mark): one step
#: and those 5 minutes of page views are live.
WORST_LIVE = page_prefix.PREFIX_STEP + timedelta(minutes=5)

#: Today's most page views in ``%(span)s`` starting at a 5-minute mark.
BUSIEST_SQL = """
WITH marks AS (
    SELECT date_bin('5 minutes', occurred_at, %(today)s) AS mark, count(*) AS n
    FROM public.user_activity_events
    WHERE event_type = 'page_view' AND occurred_at >= %(today)s AND occurred_at <= %(now)s
    GROUP BY 1
)
SELECT coalesce(max(n), 0) AS n FROM (
    SELECT sum(n) OVER (ORDER BY mark RANGE BETWEEN CURRENT ROW
                        AND %(span)s - interval '5 minutes' FOLLOWING) AS n
    FROM marks) w
"""

#: The time from which the latest ``%(n)s`` page views of today on are.
NTH_LATEST_SQL = """
SELECT occurred_at FROM public.user_activity_events
WHERE event_type = 'page_view' AND occurred_at >= %(today)s AND occurred_at <= %(now)s
ORDER BY occurred_at DESC OFFSET %(n)s - 1 LIMIT 1
"""


def _page_views_prefix_behind(url: str, client: FlaskClient, headers: dict[str, str],
                              rounds: int, span: timedelta | None,
                              ) -> tuple[str, tuple[float, float]] | None:
    """page-views with as many page views live as today's busiest ``span`` holds (None:
    the prefix at the start of the latest page view's hour), then restored."""
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with psycopg.connect(url, autocommit=True) as conn:
        latest = conn.execute(LATEST_PAGE_VIEW_SQL, {"today": today, "now": now}).fetchone()
        if not latest or latest[0] is None:
            return None
        through = latest[0].replace(minute=0, second=0, microsecond=0)
        if span is not None:
            params = {"today": today, "now": now, "span": span}
            busiest = conn.execute(BUSIEST_SQL, params).fetchone()
            row = conn.execute(NTH_LATEST_SQL, {**params, "n": int(busiest[0]) if busiest else 1},
                               ).fetchone()
            through = row[0] if row else through
        if through <= today:
            return None
        row = conn.execute(PAGE_VIEWS_SINCE_SQL, {"since": through, "now": now}).fetchone()
        live_views = int(row[0]) if row else 0
        started = time.perf_counter()
        page_prefix.compute_prefix(conn, today.date(), through)
        computed = (time.perf_counter() - started) * 1000
        _vacuum_rollups(conn)
        try:
            samples = timed(lambda: _ok(client.get(ADMIN_ENDPOINTS[1], headers=headers)),
                            rounds)
        finally:
            page_prefix.roll_up_prefix(conn, now=datetime.now(UTC))
            _vacuum_rollups(conn)
    return (f"{live_views:,} page views since the prefix at {through:%H:%M:%S}; "
            f"recomputing the prefix took {computed:,.0f} ms"), _summary(samples)


def _get(client: FlaskClient, path: str, headers: dict[str, str]) -> None:
    _ok(client.get(path, headers=headers))


def _ok(answer: Any) -> None:
    if answer.status_code != 200:
        raise RuntimeError(f"{answer.status_code}: {answer.get_data(as_text=True)[:300]}")


def _summary(samples: list[float]) -> tuple[float, float]:
    return percentile(samples, 50), percentile(samples, 95)


def main(argv: list[str]) -> None:
    """Print p50/p95 per endpoint at 1M events (and 10M with ``--large``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.analytics_endpoints")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--large", action="store_true", help="also 10M events (minutes)")
    parser.add_argument("--large-events", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--reuse", action="store_true",
                        help="keep the databases and reuse them when they exist")
    args = parser.parse_args(argv)
    sizes = [args.events] + ([args.large_events] if args.large else [])
    measured: dict[int, dict[str, tuple[float, float]]] = {}
    for events in sizes:
        print(f"-- {events:,} events, {DAYS} days, "
              f"{max(300, events // STUDENTS_PER_EVENTS):,} students", flush=True)
        with _database(events, args.reuse) as url:
            measured[events] = measure(url, args.rounds)
        for name, (p50, p95) in measured[events].items():
            figure(f"{name} p50 / p95", f"{p50:7.1f} / {p95:7.1f}", "ms")
    if len(sizes) == 2:
        small, large = (measured[n] for n in sizes)
        print(f"-- p95 growth {sizes[0]:,} → {sizes[1]:,} events", flush=True)
        for name in small:
            figure(f"{name} p95 ×", large[name][1] / small[name][1])


if __name__ == "__main__":
    main(sys.argv[1:])
