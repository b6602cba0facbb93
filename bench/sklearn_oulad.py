"""The scikit-learn side of ``bench.risk_calibrate_oulad``: the best model we can fit on the
same features, trained on 2013B and judged on 2013J, for each dumped week.

Runs in a scratch environment, never in Waymark's (scikit-learn is not a dependency)::

    python3 -m venv /tmp/sk && /tmp/sk/bin/pip install scikit-learn numpy
    python -m bench.risk_calibrate_oulad --dump /tmp/oulad-samples
    /tmp/sk/bin/python bench/sklearn_oulad.py /tmp/oulad-samples

Features: the factor values of every Waymark risk factor (the same 0–1 numbers the
calibration searches over), per student, as they stood at the week's snapshot. Models: a
logistic regression (L2, C chosen by 5-fold cross-validation on 2013B only) and gradient
boosting (a small grid, chosen the same way). Prints the 2013J AUC of each next to the
AUC of the weights ``waymark risk-calibrate`` fitted: over the whole presentation, and
among classmates (over pairs of students of the same module presentation only, each
class weighted by its pairs: the order of a teacher's list, where a class's base rate
plays no part), and a 95 % paired bootstrap interval of the gap between the readable sum
and the better model: whether it is more than which 2013J students happened to be drawn.
"""

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold

#: students drawn with replacement this many times for the interval of a gap
BOOTSTRAP_ROUNDS = 1000


def matrix(part: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    names = sorted(part["values"][0])
    x = np.array([[row[n] for n in names] for row in part["values"]])
    return x, np.array(part["labels"], dtype=int), names


def among_classmates(y: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> float:
    """The AUC over (withdrew, stayed) pairs of the same class: per class, weighted by pairs."""
    total = pairs = 0.0
    for c in np.unique(classes):
        mine = classes == c
        positives = y[mine].sum()
        negatives = mine.sum() - positives
        if positives and negatives:
            total += roc_auc_score(y[mine], scores[mine]) * positives * negatives
            pairs += positives * negatives
    return total / pairs


def paired_interval(y: np.ndarray, ours: np.ndarray, theirs: np.ndarray,
                    rounds: int = BOOTSTRAP_ROUNDS) -> tuple[float, float]:
    """95 % interval of AUC(ours) − AUC(theirs) over 2013J students drawn with replacement
    (the same draw for both scores, fixed seed): whether a gap is more than which students
    happened to be held out."""
    draw = np.random.default_rng(0)
    gaps = []
    for _ in range(rounds):
        pick = draw.integers(0, len(y), len(y))
        if 0 < y[pick].sum() < len(pick):
            gaps.append(roc_auc_score(y[pick], ours[pick]) - roc_auc_score(y[pick], theirs[pick]))
    low, high = np.percentile(gaps, [2.5, 97.5])
    return float(low), float(high)


def main(folder: Path) -> None:
    # scikit-learn 1.8 announces changes to LogisticRegressionCV's defaults on every fit;
    # the figures do not depend on them
    warnings.filterwarnings("ignore", category=FutureWarning)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    for path in sorted(folder.glob("week*.json"), key=lambda p: int(p.stem[4:])):
        data = json.loads(path.read_text())
        x_fit, y_fit, names = matrix(data["fit"])
        x_val, y_val, _ = matrix(data["held_out"])
        logistic = LogisticRegressionCV(Cs=10, cv=folds, scoring="roc_auc", max_iter=2000)
        logistic.fit(x_fit, y_fit)
        boosting = GridSearchCV(
            HistGradientBoostingClassifier(random_state=0),
            {"max_depth": [2, 3, None], "learning_rate": [0.05, 0.1],
             "max_iter": [100, 300]}, cv=folds, scoring="roc_auc")
        boosting.fit(x_fit, y_fit)
        week = path.stem[4:]
        predicted = {"logistic regression": logistic.predict_proba(x_val)[:, 1],
                     "gradient boosting": boosting.predict_proba(x_val)[:, 1]}
        held_out = {name: roc_auc_score(y_val, p) for name, p in predicted.items()}
        print(f"week {week}: {len(names)} features, 2013B {len(y_fit)} "
              f"({y_fit.sum()} with the outcome), 2013J {len(y_val)} ({y_val.sum()})")
        print(f"  2013J AUC  logistic regression {held_out['logistic regression']:.4f}  "
              f"gradient boosting {held_out['gradient boosting']:.4f}  "
              f"risk-calibrate {data['fitted_held_out_auc']:.4f}")
        ours = np.minimum(1.0, x_val @ np.array([data["weights"][n] for n in names]))
        best = max(held_out, key=held_out.__getitem__)
        low, high = paired_interval(y_val, ours, predicted[best])
        print(f"  risk-calibrate − {best}: {roc_auc_score(y_val, ours) - held_out[best]:+.4f}, "
              f"95 % paired bootstrap interval {low:+.4f} … {high:+.4f}")
        if "classes" in data["held_out"]:
            classes = np.array(data["held_out"]["classes"])
            print("  among classmates  logistic regression "
                  f"{among_classmates(y_val, predicted['logistic regression'], classes):.4f}"
                  "  gradient boosting "
                  f"{among_classmates(y_val, predicted['gradient boosting'], classes):.4f}"
                  f"  risk-calibrate {among_classmates(y_val, ours, classes):.4f}"
                  f"  (whole: {roc_auc_score(y_val, ours):.4f})")

if __name__ == "__main__":
    main(Path(sys.argv[1]))
