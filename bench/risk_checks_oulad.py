"""``python -m bench.risk_checks_oulad``: the checks inside 2013B that judge a change to the
risk fit before 2013J is looked at (issue #22; bench/README.md, "2013B → 2013J").

Why: `waymark risk-calibrate` is judged on 2013J (bench.risk_calibrate_oulad). Choosing a
change to the factors or to the fit by its 2013J figure would fit the method to the
held-out presentation, so each change is first judged inside 2013B only, by two checks:

* **leave one class out**: for each of 2013B's classes (module presentations), the fit on
  the other classes scores that class's students; the AUC of the three pooled. It asks
  what 2013J asks — do weights fitted on some courses rank the students of another.
* **14 days later**: the weights fitted at day 7·W score 2013B as it stood 14 days later
  (labels: withdrawals after that). It asks whether they hold as the course moves on.

The fit is the command's own (`calibrate.fit_params`: horizons, normalisations and
weights, on the same factor values `calibrate()` builds); ``--held-out`` also prints the
2013J AUC the fitted set reaches (as bench.risk_calibrate_oulad prints it), which a change
should be judged by only after it passed both checks.

``--outcome withdrawn-or-failed`` relabels: a student counts as the outcome if they later
withdrew *or* failed (OULAD's other common "at risk"), to see whether a gap to scikit-learn
comes from the label (a formal withdrawal) rather than from the readable sum. ``--dump DIR``
writes the fit and held-out samples for ``bench/sklearn_oulad.py``, as
bench.risk_calibrate_oulad does.

The students' raw numbers (``fetch_inputs``) are fetched once per snapshot and horizon and
reused by every fit; the fits are pure Python, as the command runs them (minutes per week).
"""

from __future__ import annotations

import argparse
import operator
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from backend.db import Row
from backend.services.analytics.risk import DEFAULT_PARAMS, RiskParams, calibrate
from backend.services.analytics.risk.inputs import fetch_inputs, student_classes
from bench.common import figure
from bench.oulad_replay import COURSE_DAY_0, HISTORY_DAYS, load_registrations
from bench.risk_calibrate_oulad import J_DAY_0, J_END, WEEKS, replayed, write_dump
from bench.risk_oulad import DEFAULT_DATA

#: 2013B's presentations end by day 269; its later-check labels read up to here
B_END = COURSE_DAY_0 + timedelta(days=300)
LATER_DAYS = 14
OUTCOMES = ("withdrawn", "withdrawn-or-failed")


class Snapshots:
    """Raw numbers of every student at a course day, fetched once per horizon."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._rows: dict[tuple[Any, ...], list[Row]] = {}

    def rows(self, at: datetime, params: RiskParams) -> list[Row]:
        key = (at, params.window_days, params.deadline_days, params.trend_days,
               params.session_gap_minutes)
        if key not in self._rows:
            self._rows[key] = fetch_inputs(self._conn, now=at, params=params,
                                           history_days=HISTORY_DAYS)
        return self._rows[key]


def failed_at(data: Path) -> dict[Any, datetime]:
    """When each registration that ended in a fail ended (the presentation's last day, or
    its unregistration day if earlier), on the replay's calendar."""
    ends: dict[Any, datetime] = {}
    for key, reg in load_registrations(data).items():
        if reg.final_result == "Fail":
            day0 = J_DAY_0 if key[1] == "2013J" else COURSE_DAY_0
            end = reg.length if reg.unregistered is None else min(reg.unregistered, reg.length)
            ends[reg.user_id] = day0 + timedelta(days=end, hours=18)
    return ends


class Checks:
    """Fit at a 2013B snapshot (optionally on some classes only) and judge elsewhere."""

    def __init__(self, snapshots: Snapshots, outcomes: Mapping[Any, datetime],
                 finished: Callable[[datetime], Mapping[Any, datetime]],
                 classes: Mapping[Any, Any]) -> None:
        self.snapshots, self.outcomes, self.classes = snapshots, outcomes, classes
        self.finished = finished

    def sample(self, at: datetime, until: datetime, params: RiskParams,
               only: Callable[[Any], bool] | None = None) -> calibrate.Sample:
        rows = self.snapshots.rows(at, params)
        if only is not None:
            rows = [r for r in rows if only(self.class_of(r["user_id"]))]
        return calibrate.sample(rows, self.outcomes, at=at, until=until, params=params,
                                classes=self.classes, finished=self.finished(at))

    def class_of(self, user_id: Any) -> Any:
        return (self.classes.get(user_id) or [None])[0]

    def fit(self, at: datetime, only: Callable[[Any], bool] | None = None) -> RiskParams:
        """What `risk-calibrate` fits at ``at``, labels: outcomes after it (2013B's)."""
        return calibrate.fit_params(
            lambda params: self.sample(at, J_DAY_0, params, only), DEFAULT_PARAMS)[0]

    def scored(self, params: RiskParams, at: datetime, until: datetime,
               only: Callable[[Any], bool] | None = None) -> tuple[list[float], list[bool]]:
        """Each student's score under ``params`` at ``at``, and their label."""
        values, labels = self.sample(at, until, params, only)
        return calibrate.scores_of(values, params.weights()), labels

    def leave_one_class_out(self, at: datetime) -> float:
        """Each class scored by the fit on the others, pooled: do weights fitted on some
        courses rank the students of another (what 2013J asks)?"""
        in_b = sorted({self.class_of(r["user_id"])
                       for r in self.snapshots.rows(at, DEFAULT_PARAMS)} - {None}, key=str)
        scores: list[float] = []
        labels: list[bool] = []
        for held in in_b:
            fitted = self.fit(at, only=partial(operator.ne, held))
            s, y = self.scored(fitted, at, J_DAY_0, only=partial(operator.eq, held))
            scores += s
            labels += y
        return calibrate.auc(scores, labels)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.risk_checks_oulad")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--week", type=int, action="append", help="default 4, 8 and 12")
    parser.add_argument("--outcome", choices=OUTCOMES, action="append",
                        help="default withdrawn; may be given twice")
    parser.add_argument("--held-out", action="store_true", help="also print the 2013J AUC")
    parser.add_argument("--dump", type=Path, help="write each week's samples here (JSON)")
    parser.add_argument("--db-name", default="wm_bench_checks_oulad",
                        help="the scratch database (dropped afterwards)")
    args = parser.parse_args(argv)
    with replayed(args.data, args.db_name) as url:
        with psycopg.connect(url) as conn:
            snapshots = Snapshots(conn)
            withdrawals = calibrate.outcome_times(conn, "course_withdrawn", J_END)
            completions = calibrate.outcome_times(conn, "course_completed", J_END)
            classes = student_classes(conn)
            for outcome in args.outcome or ["withdrawn"]:
                outcomes = dict(withdrawals)
                if outcome == "withdrawn-or-failed":
                    outcomes.update(failed_at(args.data))
                print(f"  outcome: {outcome}", flush=True)
                checks = Checks(snapshots, outcomes, lambda at: {
                    u: t for u, t in completions.items() if t <= at}, classes)
                for week in args.week or WEEKS:
                    run(checks, week, outcome, args.held_out, args.dump)


def run(checks: Checks, week: int, outcome: str, held_out: bool, dump: Path | None) -> None:
    started = time.perf_counter()
    fit_at = COURSE_DAY_0 + timedelta(days=7 * week)
    fitted = checks.fit(fit_at)
    later = calibrate.auc(*checks.scored(fitted, fit_at + timedelta(days=LATER_DAYS), B_END))
    loco = checks.leave_one_class_out(fit_at)
    figure(f"week {week}: 2013B, leave one class out", f"{loco:.4f}")
    figure(f"week {week}: 2013B, {LATER_DAYS} days later", f"{later:.4f}")
    validate_at = J_DAY_0 + timedelta(days=7 * week)
    if held_out or dump:
        scores, labels = checks.scored(fitted, validate_at, J_END)
        figure(f"week {week}: 2013J (held out)",
               f"{calibrate.auc(scores, labels):.4f}")
    weights = {k: v for k, v in fitted.weights().items() if v}
    print(f"    weights: {weights} ({time.perf_counter() - started:.0f} s)", flush=True)
    if dump:
        judged = checks.sample(validate_at, J_END, fitted)
        kept = calibrate.sampled(checks.snapshots.rows(validate_at, fitted), checks.outcomes,
                                 at=validate_at, finished=checks.finished(validate_at))
        write_dump(dump / outcome / f"week{week}.json", checks.sample(fit_at, J_DAY_0, fitted),
                   judged, [str(checks.class_of(r["user_id"])) for r in kept], fitted.weights(),
                   calibrate.auc(calibrate.scores_of(judged[0], fitted.weights()), judged[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
