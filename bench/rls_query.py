"""What row-level security costs a student's "my last 30 days" query on 1M events.

The same query (``MY_LAST_30_DAYS``) runs, interleaved round by round, as the student
(``Database.as_user``: SET LOCAL ROLE authenticated + the student's claims), as an admin
(same role, admin claims, same ``user_id`` filter), and on the service connection (no RLS,
the floor). Each timing covers the whole read transaction the API pays for: identity
set-up, query, commit. It also shows the plan (auth.uid() as a once-only InitPlan, an
index scan on (user_id, occurred_at)) and the same student query *without* the explicit
``user_id`` filter, which is why Waymark's queries always add it.

A teacher's class query (``CLASS_LAST_30_DAYS``: one class's events by category) runs the
same way as the class's teacher and as an admin; the goal is teacher ≤ 1.5× admin.

``python -m bench.rls_query [--events 1000000] [--rounds 300] [--keep]``
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from backend import migrations
from backend.db import Database
from bench.common import figure, fresh_database, percentile, server_url
from bench.generate import generate

DATABASE = "waymark_bench_rls"

#: The student's "my last 30 days" query: activity by category (tests/test_rls.py has it too).
MY_LAST_30_DAYS = """
SELECT event_category, count(*) AS events
FROM public.user_activity_events
WHERE user_id = %(user_id)s AND occurred_at >= %(since)s
GROUP BY event_category
ORDER BY event_category
"""
#: The same question leaning on RLS alone to pick the rows (what not to write).
RLS_ONLY = """
SELECT event_category, count(*) AS events
FROM public.user_activity_events
WHERE occurred_at >= %(since)s
GROUP BY event_category
ORDER BY event_category
"""
#: A teacher's class query: the class's events by category over 30 days (tests/test_rls.py
#: has it too). The same text runs as the class's teacher and as an admin.
CLASS_LAST_30_DAYS = """
SELECT event_category, count(*) AS events
FROM public.user_activity_events
WHERE user_id IN (SELECT m.user_id FROM public.class_memberships m
                  WHERE m.class_id = %(class_id)s AND m.member_role = 'student')
  AND occurred_at >= %(since)s
GROUP BY event_category
ORDER BY event_category
"""
#: The teacher of the largest class (the demo data's classes hold about 24 students).
A_CLASS = """
SELECT t.class_id, t.user_id AS teacher, count(s.user_id) AS students
FROM public.class_memberships t
JOIN public.class_memberships s ON s.class_id = t.class_id AND s.member_role = 'student'
WHERE t.member_role = 'teacher'
GROUP BY t.class_id, t.user_id
ORDER BY count(s.user_id) DESC, t.class_id
LIMIT 1
"""
TYPICAL_STUDENT = """
SELECT user_id, n FROM (
    SELECT user_id, count(*) AS n FROM public.user_activity_events
    WHERE user_id IS NOT NULL AND occurred_at >= %(since)s
      AND user_id NOT IN (SELECT parent_id FROM public.guardian_links)
    GROUP BY user_id
) per_user ORDER BY n, user_id OFFSET (
    SELECT count(DISTINCT user_id) / 2 FROM public.user_activity_events
    WHERE user_id IS NOT NULL AND occurred_at >= %(since)s
      AND user_id NOT IN (SELECT parent_id FROM public.guardian_links)
) LIMIT 1
"""


def claims(user_id: uuid.UUID, role: str) -> dict[str, Any]:
    """Supabase-style verified claims, as backend.auth hands them to Database.as_user."""
    now = int(time.time())
    return {"sub": str(user_id), "aud": "authenticated", "role": "authenticated",
            "iat": now, "exp": now + 3600, "app_metadata": {"role": role}}


def timed(run: Callable[[], object]) -> float:
    """Milliseconds one call takes."""
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


@contextmanager
def database(*, keep: bool) -> Iterator[str]:
    """The benchmark database: reused when kept from an earlier run, else made fresh."""
    server = server_url()
    url = make_conninfo(server, dbname=DATABASE)
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (DATABASE,)).fetchone()
    if keep and exists:
        migrations.migrate(url)
        yield url
        return
    with fresh_database(DATABASE, keep=keep) as fresh:
        yield fresh


def run_as(db: Database, who: dict[str, Any] | None, query: str,
           params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run ``query`` the way the API reads: one transaction as ``who``."""
    with db.as_user(who) as conn:
        return conn.execute(query, params).fetchall()


def explain_as(db: Database, who: dict[str, Any], query: str, params: dict[str, Any]) -> str:
    """EXPLAIN ANALYZE of ``query`` as ``who``, as text."""
    with db.as_user(who) as conn:
        rows = conn.execute("EXPLAIN (ANALYZE, VERBOSE, COSTS OFF) " + query, params).fetchall()
    return "\n".join(r[0] for r in rows)


def load(url: str, events: int) -> None:
    """Fill the database with ``events`` demo-like events unless it already has them."""
    with psycopg.connect(url) as conn:
        have = conn.execute("SELECT count(*) FROM public.user_activity_events").fetchone()
    if have and have[0] >= events:
        print(f"  reusing {have[0]:,} events in {DATABASE}", flush=True)
        return
    started = time.perf_counter()
    generate(url, events, students=max(300, events // 500), days=90)
    figure("generated events", events)
    figure("generation time", time.perf_counter() - started, "s")


def measure(db: Database, student: uuid.UUID, rounds: int) -> dict[str, list[float]]:
    """Run the variants interleaved, ``rounds`` times each, and collect timings."""
    params = {"user_id": student, "since": datetime.now(UTC) - timedelta(days=30)}
    as_student, as_admin = claims(student, "student"), claims(uuid.uuid4(), "admin")

    def read_as(who: dict[str, Any] | None) -> Callable[[], object]:
        return lambda: run_as(db, who, MY_LAST_30_DAYS, params)

    variants: dict[str, Callable[[], object]] = {
        "student (RLS)": read_as(as_student),
        "admin (RLS)": read_as(as_admin),
        "service connection (no RLS)": lambda: db.fetch_all(MY_LAST_30_DAYS, params),
        "identity set-up alone (SELECT 1 as student)": lambda: run_as(db, as_student,
                                                                       "SELECT 1", {}),
    }
    assert read_as(as_student)() == read_as(as_admin)() == [
        tuple(r.values()) for r in db.fetch_all(MY_LAST_30_DAYS, params)]
    for run in variants.values():  # warm the cache
        run()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:  # rotate the order each round
            samples[name].append(timed(variants[name]))
    return samples


def server_side(db: Database, student: uuid.UUID, rounds: int) -> dict[str, list[float]]:
    """Planning + execution time as PostgreSQL reports it (no round trips), interleaved."""
    params = {"user_id": student, "since": datetime.now(UTC) - timedelta(days=30)}
    who = {"student": claims(student, "student"), "admin": claims(uuid.uuid4(), "admin")}
    samples: dict[str, list[float]] = {name: [] for name in who}
    for i in range(rounds):
        for name in (("student", "admin") if i % 2 else ("admin", "student")):
            with db.as_user(who[name]) as conn:
                row = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + MY_LAST_30_DAYS,
                                   params).fetchone()
            assert row is not None
            plan = row[0][0]
            samples[name].append(plan["Planning Time"] + plan["Execution Time"])
    return samples


def main(argv: list[str]) -> None:
    """Load 1M events, then print plan, timings and the student/admin ratio."""
    parser = argparse.ArgumentParser(prog="python -m bench.rls_query", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--keep", action="store_true",
                        help=f"keep (and reuse) the database {DATABASE}")
    args = parser.parse_args(argv)
    with database(keep=args.keep) as url:
        load(url, args.events)
        db = Database(url, min_size=1, max_size=1)
        db.open(wait=True)
        try:
            report(db, args.rounds)
        finally:
            db.close()


def report(db: Database, rounds: int) -> None:
    """Print the figures of one run."""
    since = datetime.now(UTC) - timedelta(days=30)
    row = db.fetch_one(TYPICAL_STUDENT, {"since": since})
    assert row is not None, "no student has events in the last 30 days"
    student, student_rows = row["user_id"], row["n"]
    total = db.fetch_one("SELECT count(*) AS n FROM public.user_activity_events")
    figure("events in the table", total["n"] if total else 0)
    figure("the (median) student's events, last 30 days", student_rows)
    plan = explain_as(db, claims(student, "student"), MY_LAST_30_DAYS,
                      {"user_id": student, "since": since})
    print("  plan as the student:\n    " + plan.replace("\n", "\n    "), flush=True)
    samples = measure(db, student, rounds)
    for name, values in samples.items():
        figure(f"{name} p50", statistics.median(values), "ms")
        figure(f"{name} p95", percentile(values, 95), "ms")
    student_p50 = statistics.median(samples["student (RLS)"])
    figure("ratio student / admin (p50)", student_p50 / statistics.median(samples["admin (RLS)"]))
    figure("ratio student / service connection (p50)",
           student_p50 / statistics.median(samples["service connection (no RLS)"]))
    server = server_side(db, student, max(20, rounds // 5))
    for name, values in server.items():
        figure(f"{name}: server-side planning + execution p50", statistics.median(values), "ms")
    figure("server-side ratio student / admin (p50)",
           statistics.median(server["student"]) / statistics.median(server["admin"]))
    rls_only = [timed(lambda: run_as(db, claims(student, "student"), RLS_ONLY,
                                     {"since": since})) for _ in range(3)]
    figure("student, RLS alone picks the rows (p50 of 3)", statistics.median(rls_only), "ms")
    admin_scan: dict[str, list[float]] = {"admin (RLS)": [], "service connection": []}
    for _ in range(5):
        admin_scan["admin (RLS)"].append(timed(lambda: run_as(
            db, claims(uuid.uuid4(), "admin"), RLS_ONLY, {"since": since})))
        admin_scan["service connection"].append(timed(lambda: db.fetch_all(
            RLS_ONLY, {"since": since})))
    for name, values in admin_scan.items():
        figure(f"everyone's last 30 days by category, {name} p50 of 5",
               statistics.median(values), "ms")
    figure("ratio admin (RLS) / service connection, whole-table scan",
           statistics.median(admin_scan["admin (RLS)"])
           / statistics.median(admin_scan["service connection"]))
    teacher_report(db, rounds)


def teacher_report(db: Database, rounds: int) -> None:
    """The class query as its teacher and as an admin, interleaved: plan, timings, ratio."""
    row = db.fetch_one(A_CLASS)
    if row is None:
        print("  no classes in this database (made before classes existed?): run without "
              "--keep to regenerate", flush=True)
        return
    params = {"class_id": row["class_id"], "since": datetime.now(UTC) - timedelta(days=30)}
    who = {"teacher (RLS)": claims(row["teacher"], "teacher"),
           "admin (RLS)": claims(uuid.uuid4(), "admin")}
    figure("the class's students", row["students"])
    answers = {name: run_as(db, claims_, CLASS_LAST_30_DAYS, params)
               for name, claims_ in who.items()}
    assert answers["teacher (RLS)"] == answers["admin (RLS)"], answers
    figure("the class's events, last 30 days", sum(n for _, n in answers["admin (RLS)"]))
    plan = explain_as(db, who["teacher (RLS)"], CLASS_LAST_30_DAYS, params)
    print("  plan as the teacher:\n    " + plan.replace("\n", "\n    "), flush=True)
    samples: dict[str, list[float]] = {name: [] for name in who}
    names = list(who)
    for i in range(rounds):
        for name in (names if i % 2 else names[::-1]):
            samples[name].append(timed(partial(run_as, db, who[name], CLASS_LAST_30_DAYS,
                                               params)))
    for name, values in samples.items():
        figure(f"class query, {name} p50", statistics.median(values), "ms")
        figure(f"class query, {name} p95", percentile(values, 95), "ms")
    figure("ratio teacher / admin, class query (p50; goal <= 1.5)",
           statistics.median(samples["teacher (RLS)"]) / statistics.median(samples["admin (RLS)"]))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
