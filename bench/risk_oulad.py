"""Validate Waymark's dropout-risk score on real student data (OULAD, 2013 presentations).

``python -m bench.risk_oulad --data /work/shared/data/oulad-2013 --week 4 --week 8 --week 12``

Replays the directory into a fresh database as Waymark events (bench/oulad_replay.py),
then for each week W sets "now" to course day 7·W, scores every student still
registered that day with ``backend.services.analytics.risk.score_students`` — the function the
at-risk endpoint and the score job use — and prints AUC, precision/recall/F1 at the
0.7 threshold, the level distribution and each factor's mean contribution for students
who later withdrew vs those who stayed, for the seed parameters and the calibrated ones.
``--calibrate`` re-runs the parameter search (on this data only) and prints what it found;
``--calibrate-scale`` searches only the preset's scale (the normalisations that decide
how many students reach 0.7, and the two largest weights lightly).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from backend.db import Row
from backend.services.analytics import risk
from backend.services.analytics.risk import (
    CALIBRATED_PARAMS,
    DEFAULT_PARAMS,
    RiskAssessment,
    RiskParams,
)
from backend.services.analytics.risk.calibrate import roc_auc
from bench import oulad_replay
from bench.common import figure, fresh_database
from bench.oulad_replay import HISTORY_DAYS

THRESHOLD = 0.7
#: Share of students flagged by the rank-based figure: what a teacher sees when the
#: at-risk list is cut at the top fifth instead of at a fixed score.
TOP_SHARE = 0.2
DEFAULT_DATA = Path("/work/shared/data/oulad-2013")


@dataclass(frozen=True)
class Evaluation:
    """How well one parameter set separates later withdrawals from the rest at one week."""

    week: int
    students: int
    withdrawn: int
    unscored: int
    auc: float
    precision: float
    recall: float
    f1: float
    levels: dict[str, int]
    contributions: dict[str, tuple[float, float]]  # factor → (withdrawn mean, retained mean)
    top: tuple[float, float, float] = (1.0, 0.0, 0.0)  # threshold of the top fifth, precision, recall


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """The command's AUC (``risk.calibrate.roc_auc``), nan without both kinds of student."""
    value = roc_auc(scores, labels)
    return math.nan if value is None else value


def precision_recall_f1(scores: Sequence[float], labels: Sequence[bool],
                        threshold: float = THRESHOLD) -> tuple[float, float, float]:
    """Precision, recall and F1 of "score ≥ threshold" as the withdrawal prediction."""
    tp = sum(1 for s, y in zip(scores, labels, strict=True) if s >= threshold and y)
    fp = sum(1 for s, y in zip(scores, labels, strict=True) if s >= threshold and not y)
    fn = sum(1 for s, y in zip(scores, labels, strict=True) if s < threshold and y)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def top_share(scores: Sequence[float], labels: Sequence[bool],
              share: float = TOP_SHARE) -> tuple[float, float, float]:
    """The score that flags the highest ``share`` of students, and that cut's precision/recall.

    A score whose scale is compressed (few students near 0.7) can still rank well; this
    says how the ranking does as a list of the top fifth. Ties at the cut are all flagged.
    """
    if not scores:
        return 1.0, 0.0, 0.0
    ranked = sorted(scores, reverse=True)
    cut = ranked[max(0, math.ceil(share * len(ranked)) - 1)]
    precision, recall, _ = precision_recall_f1(scores, labels, cut)
    return cut, precision, recall


def population(registrations: dict[oulad_replay.Key, oulad_replay.Registration],
               week: int) -> dict[uuid.UUID, bool]:
    """Students still registered on course day 7·week → whether they later withdrew."""
    day = 7 * week
    return {r.user_id: r.withdrew for r in registrations.values() if r.registered_on(day)}


def context_populations(registrations: dict[oulad_replay.Key, oulad_replay.Registration],
                        week: int) -> dict[str, dict[uuid.UUID, bool]]:
    """Two other framings, printed for comparison with published figures (not the goal).

    "incl. already withdrawn": every registration made by day 7·week, withdrawn ones too
    (the README's trap: a student who left weeks ago is trivially inactive). "withdrawn
    or failed": the students still registered, with failing counted as the bad outcome.
    """
    day = 7 * week
    return {
        "incl. already withdrawn": {
            r.user_id: r.withdrew for r in registrations.values()
            if r.registered is None or r.registered <= day},
        "withdrawn or failed": {
            r.user_id: r.final_result in ("Withdrawn", "Fail")
            for r in registrations.values() if r.registered_on(day)},
    }


def evaluate(week: int, assessments: Sequence[RiskAssessment],
             labels: dict[uuid.UUID, bool]) -> Evaluation:
    """The figures of one week's scores against the outcomes of its population."""
    scored = {a.user_id: a for a in assessments if a.user_id in labels}
    users = list(labels)
    # A registration without any Waymark event cannot be scored; it counts as risk 1.
    scores = [scored[u].score if u in scored else 1.0 for u in users]
    truth = [labels[u] for u in users]
    precision, recall, f1 = precision_recall_f1(scores, truth)
    names = list(dict.fromkeys(f.name for a in scored.values() for f in a.factors))
    contributions: dict[str, tuple[float, float]] = {}
    for name in names:
        by_label: dict[bool, list[float]] = {True: [], False: []}
        for user, assessment in scored.items():
            value = next((f.contribution for f in assessment.factors if f.name == name), 0.0)
            by_label[labels[user]].append(value)
        contributions[name] = (statistics.fmean(by_label[True] or [0.0]),
                               statistics.fmean(by_label[False] or [0.0]))
    return Evaluation(week=week, students=len(users), withdrawn=sum(truth),
                      unscored=len(users) - len(scored), auc=auc(scores, truth),
                      precision=precision, recall=recall, f1=f1,
                      levels=dict(Counter(a.level for a in scored.values())),
                      contributions=contributions, top=top_share(scores, truth))


def now_for(week: int) -> datetime:
    """"Now" of an evaluation: the start of course day 7·week."""
    return oulad_replay.course_time(7 * week)


def print_evaluation(label: str, result: Evaluation) -> None:
    """Print one evaluation as aligned figures."""
    print(f"-- week {result.week}, {label} parameters", flush=True)
    figure("students still registered (later withdrawn)",
           f"{result.students:,} ({result.withdrawn:,})")
    if result.unscored:
        figure("registered but without any event (scored 1.0)", result.unscored)
    figure("AUC", f"{result.auc:.3f}")
    figure(f"precision / recall / F1 at {THRESHOLD}",
           f"{result.precision:.3f} / {result.recall:.3f} / {result.f1:.3f}")
    figure(f"top {TOP_SHARE:.0%}: from score / precision / recall",
           f"{result.top[0]:.3f} / {result.top[1]:.3f} / {result.top[2]:.3f}")
    figure("levels high/medium/low/at_risk", " / ".join(
        f"{result.levels.get(level, 0):,}" for level in risk.LEVELS))
    for name, (withdrawn, retained) in result.contributions.items():
        figure(f"  {name}: withdrawn vs retained", f"{withdrawn:.3f} vs {retained:.3f}")


def score_week(conn: psycopg.Connection[Any], week: int, params: RiskParams,
               labels: dict[uuid.UUID, bool]) -> Evaluation:
    """Score everyone visible at day 7·week with Waymark's risk code and evaluate."""
    return evaluate(week, risk.score_students(conn, now=now_for(week), params=params,
                                              history_days=HISTORY_DAYS), labels)


def main(argv: list[str]) -> None:
    """Command line: replay, score weeks, print figures (and optionally calibrate)."""
    parser = argparse.ArgumentParser(prog="python -m bench.risk_oulad", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="a directory in the OULAD-2013 format")
    parser.add_argument("--week", type=int, action="append", dest="weeks",
                        help="course week to score at (repeatable; default 4, 8 and 12)")
    parser.add_argument("--database", help="superuser URL of the server to create a fresh "
                        "database on (default BENCH_DATABASE_URL / TEST_DATABASE_URL)")
    parser.add_argument("--calibrate", action="store_true",
                        help="search parameters on this data and print them")
    parser.add_argument("--calibrate-scale", action="store_true",
                        help="search the calibrated preset's normalisations (weights fixed) "
                        "for mean AUC + F1 at 0.7 on this data and print them")
    parser.add_argument("--holdout", metavar="PRESENTATION",
                        help="also calibrate (one round) on this presentation only, e.g. "
                        "2013B, and print every parameter set on the others")
    parser.add_argument("--db-name", default="waymark_bench_oulad",
                        help="name of the fresh database (dropped and re-created)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    weeks = args.weeks or [4, 8, 12]
    if args.database:
        os.environ["BENCH_DATABASE_URL"] = args.database
    with fresh_database(args.db_name, keep=args.keep) as url:
        registrations, summary = oulad_replay.replay(url, args.data)
        figure("registrations replayed", summary.registrations)
        figure("events written", summary.events)
        figure("replay time (read, build, COPY, ANALYZE)", summary.seconds, "s")
        with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
            labels = {w: population(registrations, w) for w in weeks}
            presets = [("default", DEFAULT_PARAMS), ("calibrated", CALIBRATED_PARAMS)]
            if args.calibrate:
                found = calibrate(conn, weeks, labels)
                print("-- calibrated parameters found:", found.as_dict(), flush=True)
                presets.append(("searched", found))
            if args.calibrate_scale:
                found = calibrate(conn, weeks, labels, start=CALIBRATED_PARAMS,
                                  with_f1=True, search=SCALE_SEARCH)
                print("-- scale found (weights as calibrated):", found.as_dict(), flush=True)
                presets.append(("scale searched", found))
            if args.holdout:
                holdout(conn, registrations, weeks, args.holdout, presets)
            for week in weeks:
                for label, params in presets:
                    started = time.perf_counter()
                    scored = risk.score_students(conn, now=now_for(week), params=params,
                                                 history_days=HISTORY_DAYS)
                    elapsed = time.perf_counter() - started
                    print_evaluation(label, evaluate(week, scored, labels[week]))
                    figure("score_students time (all students)", elapsed, "s")
                    for name, other in context_populations(registrations, week).items():
                        result = evaluate(week, scored, other)
                        figure(f"for comparison, {name}: AUC / F1",
                               f"{result.auc:.3f} / {result.f1:.3f}")


def holdout(conn: psycopg.Connection[Any],
            registrations: dict[oulad_replay.Key, oulad_replay.Registration],
            weeks: Sequence[int], train: str,
            presets: list[tuple[str, RiskParams]]) -> None:
    """Calibrate on one presentation, then print AUC/F1 on it and on the rest."""
    def split(week: int, inside: bool) -> dict[uuid.UUID, bool]:
        return {u: y for u, y in population(registrations, week).items()
                if (registrations_by_user[u].key[1] == train) == inside}

    registrations_by_user = {r.user_id: r for r in registrations.values()}
    found = calibrate(conn, weeks, {w: split(w, True) for w in weeks}, rounds=1)
    print(f"-- calibrated on {train} only:", found.as_dict(), flush=True)
    for week in weeks:
        for label, params in [*presets, (f"calibrated on {train}", found)]:
            scored = risk.score_students(conn, now=now_for(week), params=params,
                                         history_days=HISTORY_DAYS)
            other = evaluate(week, scored, split(week, False))
            own = evaluate(week, scored, split(week, True))
            figure(f"week {week}, {label}: AUC / F1 others | {train}",
                   f"{other.auc:.3f} / {other.f1:.3f} | {own.auc:.3f} / {own.f1:.3f}")


# ------------------------------------------------------------------ calibration

#: The values tried for each parameter, one parameter at a time (coordinate ascent).
SEARCH: dict[str, Sequence[float]] = {
    "window_days": (14, 21, 28, 42, 56),
    "deadline_days": (14, 21, 28, 42, 56, 84),
    "inactivity_days": (3, 5, 7, 10, 14, 21, 28),
    "expected_days_per_week": (1, 1.5, 2, 3, 4, 5),
    "session_target_minutes": (5, 10, 15, 20, 30, 45, 60, 90),
    "trend_days": (7, 10, 14, 21),
    "xp_target": (50, 60, 70, 80, 90, 100),
    "inactivity_weight": tuple(x / 20 for x in range(0, 21)),
    "login_weight": tuple(x / 20 for x in range(0, 21)),
    "quest_weight": tuple(x / 20 for x in range(0, 21)),
    "session_weight": tuple(x / 20 for x in range(0, 21)),
    "streak_weight": tuple(x / 20 for x in range(0, 21)),
    "deadline_weight": tuple(x / 20 for x in range(0, 21)),
    "late_weight": tuple(x / 20 for x in range(0, 21)),
    "score_weight": tuple(x / 20 for x in range(0, 21)),
    "trend_weight": tuple(x / 20 for x in range(0, 21)),
}
#: The scale search (``--calibrate-scale``): from the calibrated preset, the
#: normalisations that decide where a factor reaches 1, and the two largest weights
#: lightly. AUC barely moves with them; what they set is how many students reach 0.7
#: and the levels. Its objective is the mean AUC plus the mean F1 at 0.7.
SCALE_SEARCH: dict[str, Sequence[float]] = {
    "xp_target": (80, 90, 100),
    "xp_floor": (0, 40, 50, 55, 60, 65, 70),
    "missed_at_floor": (0, 1),
    "deadline_full_share": (0.25, 0.4, 0.5, 0.6, 0.75, 1.0),
    "late_full_share": (0.25, 0.4, 0.5, 0.75, 1.0),
    "deadline_weight": (0.15, 0.2, 0.25, 0.3),
    "score_weight": (0.4, 0.45, 0.5, 0.55),
}
SQL_PARAMS = ("window_days", "deadline_days", "trend_days", "session_gap_minutes")
#: In the order of ``RiskParams.weights()`` (and of the factors ``risk.assess`` returns).
WEIGHTS = ("inactivity_weight", "login_weight", "quest_weight", "session_weight",
           "streak_weight", "deadline_weight", "late_weight", "score_weight", "trend_weight")


def _with_weight(params: RiskParams, name: str, value: float) -> RiskParams | None:
    """``params`` with one weight set and the others rescaled so all still add up to 1."""
    others = {k: getattr(params, k) for k in WEIGHTS if k != name}
    rest = sum(others.values())
    if value > 1 or (rest == 0 and value < 1):
        return None
    scale = (1 - value) / rest if rest else 0.0
    changes = {k: v * scale for k, v in others.items()}
    changes[name] = value
    return replace(params, **changes)


def calibrate(conn: psycopg.Connection[Any], weeks: Sequence[int],
              labels: dict[int, dict[uuid.UUID, bool]],
              start: RiskParams = DEFAULT_PARAMS, rounds: int = 3,
              with_f1: bool = False,
              search: dict[str, Sequence[float]] | None = None) -> RiskParams:
    """Coordinate ascent over ``search`` (default SEARCH) on this data; factor values come
    from ``risk.assess``.

    It maximises the mean AUC over ``weeks`` (plus the mean F1 at 0.7 with ``with_f1``).

    The rows of ``risk.fetch_inputs`` are cached per week and SQL-side parameters, and the
    factor values per week and horizons (computed by ``risk.assess`` with every weight
    non-zero), so trying a weight only re-weights known values. Reported figures always
    come from ``risk.score_students`` itself.
    """
    rows_cache: dict[tuple[int, tuple[float, ...]], list[Row]] = {}
    values_cache: dict[tuple[int, tuple[float, ...]], tuple[list[bool], list[list[float]]]] = {}
    horizons = [f for f in start.as_dict() if not f.endswith("_weight")]
    probe: dict[str, Any] = {w: 1 / len(WEIGHTS) for w in WEIGHTS}

    def values(week: int, params: RiskParams) -> tuple[list[bool], list[list[float]]]:
        key = (week, tuple(float(getattr(params, h)) for h in horizons))
        if key not in values_cache:
            sql_key = (week, tuple(float(getattr(params, p)) for p in SQL_PARAMS))
            if sql_key not in rows_cache:
                rows_cache[sql_key] = [
                    r for r in risk.fetch_inputs(conn, now=now_for(week), params=params,
                                                 history_days=HISTORY_DAYS)
                    if r["user_id"] in labels[week]]
            every = replace(params, **probe)
            assessed = [risk.assess(r, now=now_for(week), params=every)
                        for r in rows_cache[sql_key]]
            seen = {a.user_id for a in assessed}
            # Registrations without any event count as 1.0, as in evaluate().
            unscored = [y for u, y in labels[week].items() if u not in seen]
            values_cache[key] = ([labels[week][a.user_id] for a in assessed] + unscored,
                                 [[f.value for f in a.factors] for a in assessed]
                                 + [[1.0] * len(WEIGHTS) for _ in unscored])
        return values_cache[key]

    def run(params: RiskParams) -> float:
        weights = [getattr(params, w) for w in WEIGHTS]
        aucs, f1s = [], []
        for week in weeks:
            truth, table = values(week, params)
            scores = [round(min(1.0, sum(w * v for w, v in zip(weights, row, strict=True))), 6)
                      for row in table]
            aucs.append(auc(scores, truth))
            f1s.append(precision_recall_f1(scores, truth)[2])
        return statistics.fmean(aucs) + (statistics.fmean(f1s) if with_f1 else 0.0)

    best, best_value = start, run(start)
    print(f"   calibration start: objective {best_value:.4f}", flush=True)
    for _ in range(rounds):
        improved = False
        for name, candidates in (search or SEARCH).items():
            for value in candidates:
                candidate = _candidate(best, name, value)
                if candidate is None or candidate == best:
                    continue
                result = run(candidate)
                if result > best_value + 1e-6:
                    best, best_value, improved = candidate, result, True
        print(f"   calibration round: objective {best_value:.4f} {best.as_dict()}", flush=True)
        if not improved:
            break
    return best


def _candidate(params: RiskParams, name: str, value: float) -> RiskParams | None:
    try:
        if name in WEIGHTS:
            return _with_weight(params, name, value)
        cast: Callable[[float], float] = int if name == "window_days" else float
        change: dict[str, Any] = {name: cast(value)}
        return replace(params, **change)
    except risk.RiskParamsError:
        return None


if __name__ == "__main__":
    main(sys.argv[1:])
