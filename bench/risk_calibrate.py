"""How long ``waymark risk-calibrate`` takes at N events (issue #22: ≤ 5 min at 1M).

Loads demo-like events (bench.generate) into a fresh database, marks the least active
fifth of the students as withdrawn (half after the fit snapshot, half after the held-out
snapshot), then times one calibration (fit + held-out figures) as the command runs it,
and the command itself (``waymark risk-calibrate --dry-run``: the calibration plus each
set's held-out lead time, which re-scores the flagged leavers' history week by week).

    python -m bench.risk_calibrate --events 1000000
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import psycopg
from click.testing import CliRunner

from backend.config import Settings
from backend.scripts.cli import main as waymark
from backend.services.analytics.risk import DEFAULT_PARAMS, calibrate
from bench.common import figure, fresh_database
from bench.generate import generate

NOW = datetime(2026, 6, 1, tzinfo=UTC)
FIT_AT = NOW - timedelta(days=40)
VALIDATE_AT = NOW - timedelta(days=20)

MARK_WITHDRAWN = """
WITH ranked AS (
    SELECT user_id, ntile(10) OVER (ORDER BY count(*), user_id) AS tenth
    FROM public.user_activity_events WHERE occurred_at <= %(fit_at)s
    GROUP BY user_id
)
INSERT INTO public.user_activity_events (user_id, occurred_at, event_type, event_category)
SELECT user_id, CASE WHEN tenth = 1 THEN %(fit_at)s ELSE %(validate_at)s END
                + interval '3 days', 'course_withdrawn', 'custom'
FROM ranked WHERE tenth <= 2
"""


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.risk_calibrate", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--students", type=int, default=0, help="default: one per 500 events")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    students = args.students or max(300, args.events // 500)
    with fresh_database("waymark_bench_calibrate", keep=args.keep) as url:
        generate(url, args.events, students=students, days=90, now=NOW)
        with psycopg.connect(url, prepare_threshold=None) as conn:
            conn.execute(MARK_WITHDRAWN, {"fit_at": FIT_AT, "validate_at": VALIDATE_AT})
            conn.commit()
            started = time.perf_counter()
            result = calibrate.calibrate(conn, current=DEFAULT_PARAMS,
                                         outcome="course_withdrawn", fit_at=FIT_AT,
                                         validate_at=VALIDATE_AT, until=NOW,
                                         history_days=Settings.anonymize_after_days)
            elapsed = time.perf_counter() - started
        started = time.perf_counter()
        command = CliRunner().invoke(waymark, [
            "risk-calibrate", "--dry-run", "--fit-at", f"{FIT_AT:%Y-%m-%d %H:%M:%S}",
            "--validate-at", f"{VALIDATE_AT:%Y-%m-%d %H:%M:%S}", "--until",
            f"{NOW:%Y-%m-%d %H:%M:%S}"], env={"DATABASE_URL": url}, catch_exceptions=False)
        whole = time.perf_counter() - started
        if command.exit_code != 0:
            raise SystemExit(command.output)
        print(command.output, end="")
    figure("events", args.events)
    figure("students", students)
    figure("held-out AUC, current", f"{result.current_figures.auc:.4f}")
    figure("held-out AUC, candidate", f"{result.candidate_figures.auc:.4f}")
    figure("calibration", f"{elapsed:.1f}", "s")
    figure("the command, lead times included", f"{whole:.1f}", "s")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
