"""How far a weighted sum of readable 0–1 factors can get on OULAD, straight from the CSVs.

``python -m bench.oulad_ceiling --data /work/shared/data/oulad-2013 --week 4 --week 8 --week 12``

The part of the ceiling study (bench/README.md, "Ceiling study") that needs no
dependency: the same population and label as ``bench.risk_oulad`` (still registered on
course day 7·W; withdrew later), six factors computed from the raw CSVs with data
before that day, each factor's AUC alone, and a logistic regression on all six
(Newton's method, pure Python) under 5-fold cross-validation grouped by student. The
folds come from the student id (``id % 5``), so there is no random seed. A fitted
logistic regression with non-negative coefficients is a weighted sum of the factors, so
its AUC is what the best readable score of these factors can reach; the study's
gradient boosting on ~45 features (outside the repository: it needs scikit-learn) adds
0.01–0.03 to it.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from bench import oulad_replay
from bench.common import figure
from bench.risk_oulad import DEFAULT_DATA, auc

FACTORS = ("inactivity", "low_login", "missed", "low_scores", "late", "declining")
FOLDS = 5
RECENT_DAYS = 14


def factor_rows(data_dir: Path, week: int,
                ) -> tuple[list[list[float]], list[bool], list[int]]:
    """Per registration still registered on day 7·week: six factors, label, fold group.

    Normalisations (as in the ceiling study): inactivity = days since the last active day
    ÷ 14 (never active: 1); low_login = 1 − (active days per week over the last 14 days
    ÷ 5); missed = assessments due before the day and not submitted ÷ assessments due;
    late = submitted after the due day ÷ due; low_scores = 1 − mean score of everything
    submitted so far ÷ 100 (nothing: 0); declining = 1 − (active-day rate of the last 14
    days ÷ rate from day 0 until then; none earlier: 0). All clamped to 0–1.
    """
    day = 7 * week
    registrations = oulad_replay.load_registrations(data_dir)
    activity = oulad_replay.load_activity(data_dir)
    schedule, submitted = oulad_replay.load_submissions(data_dir, registrations)
    rows: list[list[float]] = []
    labels: list[bool] = []
    groups: list[int] = []
    for key, reg in registrations.items():
        if not reg.registered_on(day):
            continue
        active = [d for d, _, _ in activity.get(key, []) if d < day]
        due = [a for a in schedule.get(key[:2], []) if a.due < day]
        subs = {a: (d, s) for a, d, s in submitted.get(key, []) if d < day}
        rows.append(_factors(day, active, due, subs))
        labels.append(reg.withdrew)
        groups.append(int(key[2]) % FOLDS)
    return rows, labels, groups


def _factors(day: int, active: list[int],
             due: list[oulad_replay.Assessment],
             subs: dict[str, tuple[float, float | None]]) -> list[float]:
    inactivity = min(1.0, (day - max(active)) / 14) if active else 1.0
    recent = sum(1 for d in active if d >= day - RECENT_DAYS)
    low_login = _clamp(1 - (recent / 2) / 5)
    missed = sum(1 for a in due if a.id not in subs) / len(due) if due else 0.0
    late = sum(1 for a in due if a.id in subs and subs[a.id][0] > a.due) / len(due) \
        if due else 0.0
    scores = [s for _, s in subs.values() if s is not None]
    low_scores = _clamp(1 - sum(scores) / len(scores) / 100) if scores else 0.0
    earlier = sum(1 for d in active if 0 <= d < day - RECENT_DAYS)
    earlier_rate = earlier / max(1, day - RECENT_DAYS)
    declining = _clamp(1 - (recent / RECENT_DAYS) / earlier_rate) if earlier_rate else 0.0
    return [inactivity, low_login, missed, low_scores, late, declining]


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def fit_logistic(rows: Sequence[Sequence[float]], labels: Sequence[bool],
                 iterations: int = 25, ridge: float = 1e-4) -> list[float]:
    """Coefficients (intercept first) of a logistic regression, by Newton's method.

    A tiny ridge keeps the Hessian invertible when a factor is constant in a fold.
    """
    width = len(rows[0]) + 1
    beta = [0.0] * width
    for _ in range(iterations):
        gradient = [0.0] * width
        hessian = [[0.0] * width for _ in range(width)]
        for row, label in zip(rows, labels, strict=True):
            x = [1.0, *row]
            p = _sigmoid(sum(b * v for b, v in zip(beta, x, strict=True)))
            w = p * (1 - p)
            for i in range(width):
                gradient[i] += (float(label) - p) * x[i]
                for j in range(i, width):
                    hessian[i][j] += w * x[i] * x[j]
        for i in range(width):
            gradient[i] -= ridge * beta[i]
            hessian[i][i] += ridge
            for j in range(i):
                hessian[i][j] = hessian[j][i]
        step = _solve(hessian, gradient)
        beta = [b + s for b, s in zip(beta, step, strict=True)]
        if max(abs(s) for s in step) < 1e-8:
            break
    return beta


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Solve matrix · x = vector by Gaussian elimination with partial pivoting."""
    n = len(vector)
    a = [[*row, v] for row, v in zip(matrix, vector, strict=True)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(col + 1, n):
            factor = a[r][col] / a[col][col]
            for c in range(col, n + 1):
                a[r][c] -= factor * a[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (a[r][n] - sum(a[r][c] * x[c] for c in range(r + 1, n))) / a[r][r]
    return x


def cross_validated_auc(rows: Sequence[Sequence[float]], labels: Sequence[bool],
                        groups: Sequence[int]) -> float:
    """AUC of out-of-fold logistic predictions; a student's registrations share a fold."""
    predictions = [0.0] * len(rows)
    for fold in range(FOLDS):
        train = [i for i, g in enumerate(groups) if g != fold]
        beta = fit_logistic([rows[i] for i in train], [labels[i] for i in train])
        for i, g in enumerate(groups):
            if g == fold:
                predictions[i] = sum(b * v for b, v in zip(beta, [1.0, *rows[i]], strict=True))
    return auc(predictions, list(labels))


def main(argv: list[str]) -> None:
    """Command line: factors alone and together, per week."""
    parser = argparse.ArgumentParser(prog="python -m bench.oulad_ceiling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--week", type=int, action="append", dest="weeks")
    args = parser.parse_args(argv)
    for week in args.weeks or [4, 8, 12]:
        rows, labels, groups = factor_rows(args.data, week)
        print(f"-- week {week}", flush=True)
        figure("students still registered (later withdrawn)", f"{len(rows):,} ({sum(labels):,})")
        columns: dict[str, list[float]] = defaultdict(list)
        for row in rows:
            for name, value in zip(FACTORS, row, strict=True):
                columns[name].append(value)
        for name in FACTORS:
            figure(f"  {name} alone: AUC", f"{auc(columns[name], labels):.3f}")
        figure("six factors, logistic, grouped 5-fold: AUC",
               f"{cross_validated_auc(rows, labels, groups):.3f}")
        beta = fit_logistic(rows, labels)
        figure("  coefficients on all of it", ", ".join(
            f"{n} {b:+.2f}" for n, b in zip(("intercept", *FACTORS), beta, strict=True)))


if __name__ == "__main__":
    main(sys.argv[1:])
