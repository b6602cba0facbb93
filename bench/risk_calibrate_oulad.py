"""``python -m bench.risk_calibrate_oulad``: `waymark risk-calibrate` on OULAD, 2013B → 2013J.

What: OULAD 2013 replayed into a fresh database as Waymark events (bench.oulad_replay)
with the two presentations one after the other on the calendar — 2013B first, 2013J
starting ``J_OFFSET_DAYS`` later, so that no 2013J event (registrations reach 205 days
before day 0) comes before 2013B's last day — plus the events a host app sends when a
registration ends (``course_withdrawn``, ``course_completed``) and one class per module
presentation (the cohorts). Then, for each week W: ``calibrate()`` exactly as the command
runs it, fitting on 2013B as it stood at day 7·W (labels: withdrawals after that) and
judging on 2013J at its day 7·W (labels: withdrawals until its end). Time-ordered: the fit
reads nothing after 2013J's snapshot. Prints the held-out 2013J AUC of the seed weights,
of the calibrated preset (fitted on all of 2013 earlier, so in-sample for 2013J: shown
for reference) and of the candidate fitted on 2013B alone.

``--dump DIR`` also writes each week's fit and held-out samples (the factor values, under
the horizons and normalisations the calibration chose, and labels the search saw), each
held-out student's class and the fitted weights as JSON, for ``bench/sklearn_oulad.py`` to
fit scikit-learn models on the same features in a scratch environment (scikit-learn is not
a project dependency) and to compare all three among classmates too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from backend.services.analytics.risk import (
    CALIBRATED_PARAMS,
    DEFAULT_PARAMS,
    RiskParams,
    calibrate,
)
from backend.services.analytics.risk.calibrate import sample, scores_of
from backend.services.analytics.risk.inputs import fetch_inputs, student_classes
from bench.common import figure, fresh_database
from bench.oulad_replay import COURSE_DAY_0, HISTORY_DAYS, replay
from bench.risk_oulad import DEFAULT_DATA

J_OFFSET_DAYS = 480  # 2013B lasts 240 days; 2013J's earliest registration is day −205
J_DAY_0 = COURSE_DAY_0 + timedelta(days=J_OFFSET_DAYS)
J_END = J_DAY_0 + timedelta(days=270)
WEEKS = (4, 8, 12)


def snapshot(conn: psycopg.Connection[Any], params: RiskParams, at: datetime,
             until: datetime) -> tuple[calibrate.Sample, list[str]]:
    """Factor values and labels of the students as they stood ``at`` (as calibrate() does),
    and each one's class (module presentation), in the same order: the replay makes one
    user per registration, so each is in exactly one class."""
    rows = fetch_inputs(conn, now=at, params=params, history_days=HISTORY_DAYS)
    outcomes = calibrate.outcome_times(conn, "course_withdrawn", until)
    finished = calibrate.outcome_times(conn, "course_completed", at)
    classes = student_classes(conn)
    values = sample(rows, outcomes, at=at, until=until, params=params, classes=classes,
                    finished=finished)
    kept = calibrate.sampled(rows, outcomes, at=at, finished=finished)
    return values, [str(classes[r["user_id"]][0]) for r in kept]


@contextmanager
def replayed(data: Path, name: str) -> Iterator[str]:
    """A fresh database ``name`` holding 2013B, then 2013J ``J_OFFSET_DAYS`` later, with the
    outcome events and one class per module presentation; dropped afterwards."""
    with fresh_database(name) as url:
        _, summary = replay(url, data, starts={"2013J": J_DAY_0}, outcomes=True, classes=True)
        print(f"  replayed {summary.registrations:,} registrations, {summary.events:,} events "
              f"in {summary.seconds:.0f} s", flush=True)
        yield url


def write_dump(path: Path, fit: calibrate.Sample, held_out: calibrate.Sample,
               held_out_classes: Sequence[str], weights: dict[str, float],
               held_out_auc: float) -> None:
    """One week's samples in the form ``bench/sklearn_oulad.py`` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "fit": {"values": fit[0], "labels": fit[1]},
        "held_out": {"values": held_out[0], "labels": held_out[1],
                     "classes": list(held_out_classes)},
        "weights": weights, "fitted_held_out_auc": held_out_auc}))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.risk_calibrate_oulad")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--dump", type=Path, help="write each week's samples here (JSON)")
    args = parser.parse_args(argv)
    with replayed(args.data, "wm_bench_calibrate_oulad") as url:
        with psycopg.connect(url) as conn:
            for week in WEEKS:
                fit_at = COURSE_DAY_0 + timedelta(days=7 * week)
                validate_at = J_DAY_0 + timedelta(days=7 * week)
                started = time.perf_counter()
                result = calibrate.calibrate(conn, current=DEFAULT_PARAMS,
                                             outcome="course_withdrawn", fit_at=fit_at,
                                             validate_at=validate_at, until=J_END,
                                             history_days=HISTORY_DAYS)
                seconds = time.perf_counter() - started
                (values, labels), _ = snapshot(conn, CALIBRATED_PARAMS, validate_at, J_END)
                preset_auc = calibrate.auc(scores_of(values, CALIBRATED_PARAMS.weights()),
                                           labels)
                held = result.candidate_figures
                print(f"  week {week}: 2013B fit {result.fit_figures.students:,} students "
                      f"({result.fit_figures.positives:,} withdrew later), 2013J held out "
                      f"{held.students:,} ({held.positives:,}); calibration {seconds:.1f} s",
                      flush=True)
                figure(f"week {week}: 2013J AUC, seed weights", result.current_figures.auc)
                figure(f"week {week}: 2013J AUC, oulad-2013 preset (in-sample)", preset_auc)
                figure(f"week {week}: 2013J AUC, fitted on 2013B", held.auc)
                if result.gain_interval is not None:  # as the command prints it
                    low, high = result.gain_interval
                    figure(f"week {week}: 2013J AUC gain over the seed, 95 % interval",
                           f"{held.auc - result.current_figures.auc:+.4f} "
                           f"({low:+.4f} … {high:+.4f})")
                if held.auc_among_classmates is not None:  # as the command prints it
                    figure(f"week {week}: 2013J AUC among classmates (2013B fit)",
                           f"{held.auc_among_classmates:.4f}")
                weights = {k: round(v, 2) for k, v in result.candidate.weights().items() if v}
                print(f"    fitted weights: {weights}", flush=True)
                chosen = {name: getattr(result.candidate, name)
                          for name, _ in calibrate.HORIZON_GRID + calibrate.NORMALISATION_GRID
                          if getattr(result.candidate, name) != getattr(DEFAULT_PARAMS, name)}
                print(f"    horizons and normalisations changed from the seed: {chosen or 'none'}",
                      flush=True)
                if args.dump:  # the factor values as the fit saw them (its normalisations)
                    fit, _ = snapshot(conn, result.candidate, fit_at, validate_at)
                    held_out, held_out_classes = snapshot(conn, result.candidate, validate_at,
                                                          J_END)
                    write_dump(args.dump / f"week{week}.json", fit, held_out, held_out_classes,
                               result.candidate.weights(), held.auc)


if __name__ == "__main__":
    main(sys.argv[1:])
