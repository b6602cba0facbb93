"""Lead time of the risk score on OULAD: `waymark risk-backtest` on the replayed 2013 data.

``python -m bench.risk_backtest --data /work/shared/data/oulad-2013 --week 4 --week 8 --week 12``

Replays the directory (bench/oulad_replay.py), adds a ``course_withdrawn`` event on each
withdrawn registration's unregistration day (the outcome), then for each week W runs the
backtest of ``backend/scripts/backtest.py`` (the command's own code) as of course day 7·W:
AUC, precision/recall at 0.7 and the lead time from first flag (weekly re-scoring since
course day 0) to withdrawal, median and quartiles. ``--sample N`` keeps every N-th
registration (a quick run); ``--preset oulad-2013`` scores with the calibrated parameters.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import psycopg

from backend.scripts import backtest
from backend.services.analytics import risk
from bench import oulad_replay
from bench.common import figure, fresh_database

DEFAULT_DATA = Path("/work/shared/data/oulad-2013")
OUTCOME = "course_withdrawn"
INSERT_OUTCOME = (
    "INSERT INTO public.user_activity_events (user_id, occurred_at, event_type, "
    "event_category, source) VALUES (%s, %s, 'course_withdrawn', 'custom', 'server')")


def sample(data: Path, every: int, into: Path) -> Path:
    """A copy of the directory with every ``every``-th registration (all its rows)."""
    with (data / "students.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    kept = rows[::every]
    keys = {(r["code_module"], r["code_presentation"], r["id_student"]) for r in kept}
    with (into / "students.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    for name in ("daily_activity.csv.gz", "assessments.csv.gz"):
        with gzip.open(data / name, "rt") as src, gzip.open(into / name, "wt") as dst:
            reader = csv.DictReader(src)
            writer = csv.DictWriter(dst, fieldnames=reader.fieldnames or [])
            writer.writeheader()
            writer.writerows(r for r in reader
                             if (r["code_module"], r["code_presentation"], r["id_student"])
                             in keys)
    return into


def main(argv: list[str]) -> None:
    """Replay, add outcomes, print the backtest per week."""
    parser = argparse.ArgumentParser(prog="python -m bench.risk_backtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--week", type=int, action="append", dest="weeks")
    parser.add_argument("--sample", type=int, default=1, help="keep every N-th registration")
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--preset", default=None, help="risk preset, e.g. oulad-2013")
    parser.add_argument("--db-name", default="waymark_bench_backtest")
    args = parser.parse_args(argv)
    weeks = args.weeks or [4, 8, 12]
    params = risk.preset(args.preset) if args.preset else risk.DEFAULT_PARAMS
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch, fresh_database(args.db_name) as url:
        data = sample(args.data, args.sample, Path(scratch)) if args.sample > 1 else args.data
        registrations, replayed = oulad_replay.replay(url, data)
        figure("registrations / events", f"{replayed.registrations:,} / {replayed.events:,}")
        with psycopg.connect(url, prepare_threshold=None) as conn:
            with conn.cursor() as cur:
                cur.executemany(INSERT_OUTCOME, [
                    (r.user_id, oulad_replay.course_time(r.unregistered, 12 * 3600))
                    for r in registrations.values()
                    if r.withdrew and r.unregistered is not None])
            conn.commit()
            for week in weeks:
                result = backtest.backtest(
                    conn, outcome=OUTCOME, as_of=oulad_replay.course_time(7 * week),
                    threshold=args.threshold, step=timedelta(days=7), params=params,
                    start=oulad_replay.course_time(0), history_days=oulad_replay.HISTORY_DAYS)
                print(f"-- week {week} ({args.preset or 'seed'} parameters)")
                figure("students scored (later withdrew)",
                       f"{result.students:,} ({result.positives:,})")
                figure("AUC", "none" if result.auc is None else f"{result.auc:.3f}")
                figure(f"precision / recall at {args.threshold}",
                       f"{result.precision:.3f} / {result.recall:.3f}")
                lead = ("none flagged" if result.lead_days is None
                        else " / ".join(f"{d:.0f}" for d in result.lead_days))
                figure(f"lead days 25%/median/75% ({result.flagged_positives:,} flagged)", lead)
    figure("seconds", f"{time.perf_counter() - started:.0f}")


if __name__ == "__main__":
    main(sys.argv[1:])
