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
plays no part).
"""

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold


def matrix(part: dict) -> tuple[np.ndarray, np.ndarray, list[str]]:
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


def main(folder: Path) -> None:
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
        lr = roc_auc_score(y_val, logistic.predict_proba(x_val)[:, 1])
        gb = roc_auc_score(y_val, boosting.predict_proba(x_val)[:, 1])
        print(f"week {week}: {len(names)} features, 2013B {len(y_fit)} ({y_fit.sum()} withdrew),"
              f" 2013J {len(y_val)} ({y_val.sum()})")
        print(f"  2013J AUC  logistic regression {lr:.4f}  gradient boosting {gb:.4f}  "
              f"risk-calibrate {data['fitted_held_out_auc']:.4f}")
        if "classes" in data["held_out"]:
            classes = np.array(data["held_out"]["classes"])
            ours = np.minimum(1.0, x_val @ np.array([data["weights"][n] for n in names]))
            print("  among classmates  logistic regression "
                  f"{among_classmates(y_val, logistic.predict_proba(x_val)[:, 1], classes):.4f}"
                  "  gradient boosting "
                  f"{among_classmates(y_val, boosting.predict_proba(x_val)[:, 1], classes):.4f}"
                  f"  risk-calibrate {among_classmates(y_val, ours, classes):.4f}"
                  f"  (whole: {roc_auc_score(y_val, ours):.4f})")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
