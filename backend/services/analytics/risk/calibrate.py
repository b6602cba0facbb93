"""Self-calibration: fit the weights of the readable score on the deployment's own history.

Time-ordered, never random (docs/risk.md, "Self-calibration"): the students are scored
as they stood at ``fit_at`` (events up to then) and labelled by an outcome event (e.g.
``course_withdrawn``) in ``(fit_at, validate_at]``; the candidate weights are fitted on
that alone. They are then judged, against the current parameters, on the latest period:
students as they stood at ``validate_at``, labelled by outcomes in ``(validate_at,
until]``. Students whose outcome came before the snapshot are left out (already gone), as
are those who had finished by then (a ``course_completed``, or the event ``finished``
names): a student who completed a course long ago is not a student at risk of dropping
out of it. Who is scored at all already leaves out whoever withdrew or completed
(``backend.taxonomy.LEAVING_TYPES``) and was not active since, as ``waymark score`` does. Each
student is compared with their class where the cohort-relative factors are concerned
(``factors.cohorts_of``).

The fit is small and deterministic: a **non-negative logistic regression** — the log-loss
of σ(Σ cᵢ·vᵢ + b) with a small L2 penalty, minimised over cᵢ ≥ 0 by accelerated projected
gradient descent from zero, a fixed number of steps — whose coefficients, scaled to add up
to 1 (a score's order, hence its AUC, does not change with scale) and rounded to 1/100,
are the weights; at most :data:`MAX_FACTORS` are kept non-zero (the largest), so the score
stays a readable sum. Factor values are computed once per student and normalisation.

The factors' horizons and normalisations are chosen on the fit period too: coordinate
ascent over small fixed grids — first the window horizons (:data:`HORIZON_GRID`: how far
back activity, deadlines and the recent trend are read; each value fetches the fit rows
once more), then the normalisations that never reach the SQL (:data:`NORMALISATION_GRID`:
e.g. how many active days a week are enough, how many days behind the class are a full
sign) — one value at a time in a fixed order, each trial refitting the weights and kept
when it raises the fit period's AUC. The held-out period is never read to choose them.
Why this and not a search for the highest fit-period AUC: measured on OULAD
(bench/README.md), a greedy AUC search overfits the fit period and transfers worse to the
next one; the convex, penalised fit transfers better and is several times faster.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from backend.db import Row, fetch_all
from backend.services.analytics import QUERIES
from backend.services.analytics.risk.factors import all_factors, as_utc, cohorts_of
from backend.services.analytics.risk.inputs import fetch_inputs, student_classes
from backend.services.analytics.risk.params import RiskParams, RiskParamsError

#: At most this many factors with a non-zero weight.
MAX_FACTORS = 8


@dataclass(frozen=True)
class Figures:
    """How well a parameter set separates the students with the outcome from the rest."""

    auc: float
    precision: float
    recall: float
    students: int
    positives: int
    #: the AUC among classmates (:func:`auc_among_classmates`); None without classes
    auc_among_classmates: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        within = self.auc_among_classmates
        return {"auc": round(self.auc, 4), "precision": round(self.precision, 4),
                "recall": round(self.recall, 4), "students": self.students,
                "positives": self.positives,
                "auc_among_classmates": round(within, 4) if within is not None else None}


@dataclass(frozen=True)
class Calibration:
    """A candidate set, the figures of both sets on the held-out period, and the window."""

    candidate: RiskParams
    current_figures: Figures
    candidate_figures: Figures
    fit_figures: Figures
    outcome: str
    fit_at: datetime
    validate_at: datetime
    until: datetime
    threshold: float
    #: 95 % interval of the held-out AUC gain (:func:`auc_gain_interval`); None when the
    #: held-out period lacks an outcome or the two sets' snapshots hold different students
    gain_interval: tuple[float, float] | None = None

    @property
    def better(self) -> bool:
        """Adopt only when the candidate beats the current set on the held-out AUC."""
        return self.candidate_figures.auc > self.current_figures.auc + 1e-9

    def validation(self) -> dict[str, Any]:
        candidate = self.candidate_figures.as_dict()
        return {"threshold": self.threshold, "auc": candidate["auc"],
                "auc_among_classmates": candidate["auc_among_classmates"],
                "method": "non-negative logistic regression, horizons and normalisations "
                          "by grid",
                "candidate": candidate,
                "previous": self.current_figures.as_dict(), "fit": self.fit_figures.as_dict(),
                "auc_gain_interval": [round(x, 4) for x in self.gain_interval]
                if self.gain_interval else None}


Sample = tuple[list[dict[str, float]], list[bool]]


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve (Mann–Whitney, ties counted half): how often a student who
    reached the outcome scored above one who did not. None without both kinds of student.
    The one definition: calibration, ``waymark risk-backtest`` and the benches use it."""
    value = _Pairs(scores, labels).auc([1] * len(labels))
    return None if math.isnan(value) else value


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """:func:`roc_auc`, or 0.5 (a coin's) without both kinds of student, so that the fit
    can compare its trials on any sample."""
    value = roc_auc(scores, labels)
    return 0.5 if value is None else value


class _Pairs:
    """One score's (outcome, no outcome) pairs, laid out once so that the AUC of any
    re-weighting of the students (a bootstrap draw) takes one pass over the positives."""

    def __init__(self, scores: Sequence[float], labels: Sequence[bool]) -> None:
        self.negatives = sorted((i for i, y in enumerate(labels) if not y),
                                key=scores.__getitem__)
        below = [scores[i] for i in self.negatives]
        # each positive with the negatives below it and those tied with it (half a pair)
        self.positives = [(i, bisect.bisect_left(below, scores[i]),
                           bisect.bisect_right(below, scores[i]))
                          for i, y in enumerate(labels) if y]

    def auc(self, weight: Sequence[int]) -> float:
        """Mann–Whitney AUC with student i counted ``weight[i]`` times; nan without both."""
        cumulative = list(itertools.accumulate((weight[i] for i in self.negatives), initial=0))
        right = sum(weight[i] * (cumulative[lo] + cumulative[hi]) for i, lo, hi in self.positives)
        positives = sum(weight[i] for i, _, _ in self.positives)
        negatives = cumulative[-1]
        return right / 2 / (positives * negatives) if positives and negatives else math.nan


def auc_among_classmates(scores: Sequence[float], labels: Sequence[bool],
                         classes: Sequence[Any]) -> float | None:
    """The AUC over (outcome, no outcome) pairs of students of the same class, each class
    weighted by its pairs: how well a teacher's list is ordered, where a class's base rate
    plays no part. ``classes[i]`` is student i's class (None: none); None when no class
    holds both a student with the outcome and one without."""
    members: dict[Any, list[int]] = {}
    for i, class_id in enumerate(classes):
        if class_id is not None:
            members.setdefault(class_id, []).append(i)
    total = pairs = 0.0
    for students in members.values():
        ys = [labels[i] for i in students]
        both = sum(ys) * (len(ys) - sum(ys))
        if both:
            total += auc([scores[i] for i in students], ys) * both
            pairs += both
    return total / pairs if pairs else None


#: Bootstrap draws of the held-out students behind :func:`auc_gain_interval`
GAIN_DRAWS = 1000


def auc_gain_interval(current: Sequence[float], candidate: Sequence[float],
                      labels: Sequence[bool], *, draws: int = GAIN_DRAWS,
                      ) -> tuple[float, float] | None:
    """95 % interval of AUC(candidate) − AUC(current) over the held-out students drawn with
    replacement (the same draw for both, a fixed seed: same data → same interval).

    Why: adoption asks only that the candidate be higher, and on a small school's held-out
    period a few students decide that; the interval says whether the gain is more than
    which students happened to be held out. None without both outcomes among the students.
    """
    if not any(labels) or all(labels):
        return None
    pairs_current, pairs_candidate = _Pairs(current, labels), _Pairs(candidate, labels)
    draw = random.Random(0)  # noqa: S311 - a resampling with a fixed seed, not a secret
    count, gains = len(labels), []
    for _ in range(draws):
        weight = [0] * count
        for i in draw.choices(range(count), k=count):
            weight[i] += 1
        gain = pairs_candidate.auc(weight) - pairs_current.auc(weight)
        if not math.isnan(gain):  # a draw without both outcomes has no AUC: left out
            gains.append(gain)
    gains.sort()
    if not gains:
        return None
    return gains[int(0.025 * (len(gains) - 1))], gains[math.ceil(0.975 * (len(gains) - 1))]


def figures(scores: Sequence[float], labels: Sequence[bool], threshold: float,
            classes: Sequence[Any] | None = None) -> Figures:
    """AUC, precision/recall of flagging scores ≥ ``threshold``, and with each student's
    class (``classes``) the AUC among classmates."""
    flagged = [y for s, y in zip(scores, labels, strict=True) if s >= threshold]
    hits, positives = sum(flagged), sum(labels)
    return Figures(auc=auc(scores, labels), precision=hits / len(flagged) if flagged else 0.0,
                   recall=hits / positives if positives else 0.0, students=len(labels),
                   positives=positives,
                   auc_among_classmates=auc_among_classmates(scores, labels, classes)
                   if classes is not None else None)


def scores_of(values: Sequence[Mapping[str, float]], weights: Mapping[str, float]) -> list[float]:
    """The readable score of each student: the weighted sum of their factor values."""
    return [min(1.0, sum(w * v[name] for name, w in weights.items() if w)) for v in values]


#: L2 penalty and iterations of the non-negative logistic regression
L2 = 1e-3
ITERATIONS = 400


def fit_logistic(values: Sequence[Mapping[str, float]], labels: Sequence[bool],
                 start: Mapping[str, float]) -> dict[str, float]:
    """Non-negative logistic regression (see the module docstring) over the factors of
    ``start``, as weights adding to 1 on a grid of 1/100, the largest :data:`MAX_FACTORS`
    kept; ``start`` itself when there is nothing to learn from (no outcome, or only)."""
    names = list(start)
    rows = [[float(v[n]) for n in names] for v in values]
    targets = [1.0 if y else 0.0 for y in labels]
    count, width = len(rows), len(names)
    if not count or len(set(targets)) < 2:
        return dict(start)
    # step 1/L, L bounding the log-loss gradient's Lipschitz constant (intercept included)
    lipschitz = 0.25 * (sum(x * x for row in rows for x in row) / count + 1.0) + 2 * L2
    step = 1.0 / lipschitz
    coef, bias = [0.0] * width, 0.0
    ahead, ahead_bias, momentum = coef[:], bias, 1.0
    for _ in range(ITERATIONS):
        grad, grad_bias = [0.0] * width, 0.0
        for row, target in zip(rows, targets, strict=True):
            z = ahead_bias + sum(c * x for c, x in zip(ahead, row, strict=True))
            error = _sigmoid(z) - target
            grad_bias += error
            for k, x in enumerate(row):
                if x:
                    grad[k] += error * x
        new = [max(0.0, a - step * (g / count + 2 * L2 * a))
               for a, g in zip(ahead, grad, strict=True)]
        new_bias = ahead_bias - step * grad_bias / count
        following = (1 + (1 + 4 * momentum * momentum) ** 0.5) / 2
        ratio = (momentum - 1) / following
        ahead = [max(0.0, n + ratio * (n - o)) for n, o in zip(new, coef, strict=True)]
        ahead_bias = new_bias + ratio * (new_bias - bias)
        coef, bias, momentum = new, new_bias, following
    kept = sorted(range(width), key=lambda k: (-coef[k], k))[:MAX_FACTORS]
    total = sum(coef[k] for k in kept)
    if total <= 0:  # no factor raises the odds of the outcome
        return dict(start)
    weights = {n: (round(coef[k] / total, 2) if k in kept else 0.0)
               for k, n in enumerate(names)}
    largest = max(weights, key=lambda n: (weights[n], n))
    weights[largest] = round(weights[largest] + 1.0 - sum(weights.values()), 2)
    return weights


#: The window horizons a calibration chooses among, tried first, in this order (each grid
#: holds the seed's value; round numbers, not values fitted elsewhere). They reach the SQL:
#: the fit rows are fetched once per horizon tried.
HORIZON_GRID: tuple[tuple[str, tuple[float, ...]], ...] = (
    ("deadline_days", (30.0, 90.0)),
    ("window_days", (30, 60)),
    ("trend_days", (14.0, 28.0)),
)

#: The normalisations a calibration chooses among, in the order it tries them after the
#: horizons (each grid holds the seed's value). None reaches the SQL. Below this, gains on
#: the fit period's AUC are taken for noise.
NORMALISATION_GRID: tuple[tuple[str, tuple[float, ...]], ...] = (
    ("expected_days_per_week", (1.5, 3.0, 5.0)),
    ("inactivity_days", (7.0, 14.0, 28.0)),
    ("session_target_minutes", (15.0, 60.0, 240.0)),
    ("xp_floor", (0.0, 40.0, 60.0)),
    ("missed_at_floor", (0.0, 1.0)),
    ("deadline_full_share", (0.5, 1.0)),
    ("cohort_gap_days", (5.0, 10.0, 20.0)),
)
MIN_GAIN = 1e-4


def fit_params(sample_of: Callable[[RiskParams], Sample],
               current: RiskParams) -> tuple[RiskParams, Sample]:
    """The horizons of :data:`HORIZON_GRID`, the normalisations of :data:`NORMALISATION_GRID`
    and the weights, fitted on the samples ``sample_of`` gives for a parameter set (the fit
    period's only); with the sample of the set chosen (factor values do not depend on
    weights: the caller need not build it again).

    Coordinate ascent from ``current``: each value of each grid in turn, the weights refitted
    (:func:`fit_logistic`), kept when the fit period's AUC rises by more than
    :data:`MIN_GAIN`. One pass, fixed order: deterministic, and at most 1 + 3 + 13 fits.
    """
    best_sample = sample_of(current)
    best, best_auc = _fitted(best_sample, current)
    for name, grid in HORIZON_GRID + NORMALISATION_GRID:
        for value in grid:
            if value == getattr(best, name):
                continue
            try:
                trial = RiskParams.from_mapping({name: value}, base=best)
            except RiskParamsError:  # e.g. an xp_floor at or above this set's xp_target
                continue
            trial_sample = sample_of(trial)
            fitted, fitted_auc = _fitted(trial_sample, trial)
            if fitted_auc > best_auc + MIN_GAIN:
                best, best_auc, best_sample = fitted, fitted_auc, trial_sample
    return best, best_sample


def _fitted(data: Sample, params: RiskParams) -> tuple[RiskParams, float]:
    """``params`` with the weights fitted on ``data``, and their AUC there."""
    values, labels = data
    weights = fit_logistic(values, labels, params.weights())
    return params.with_weights(weights), auc(scores_of(values, weights), labels)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def sample(rows: Sequence[Row], outcomes: Mapping[Any, datetime], *, at: datetime,
           until: datetime, params: RiskParams,
           classes: Mapping[Any, Sequence[Any]] | None = None,
           finished: Mapping[Any, datetime] | None = None) -> Sample:
    """Factor values of the students as they stood ``at``, labelled by outcomes in (at, until].

    Students whose outcome, or whose finishing, came at or before ``at`` are left out: they
    had already left. Cohorts are formed of the students who remain.
    """
    present = sampled(rows, outcomes, at=at, finished=finished)
    cohorts = cohorts_of(present, classes or {})
    values, labels = [], []
    for row in present:
        outcome_at = outcomes.get(row["user_id"])
        factors = all_factors(row, now=at, params=params, cohort=cohorts.of(row["user_id"]))
        values.append({f.name: f.value for f in factors})
        labels.append(outcome_at is not None and outcome_at <= until)
    return values, labels


def sampled(rows: Sequence[Row], outcomes: Mapping[Any, datetime], *, at: datetime,
            finished: Mapping[Any, datetime] | None = None) -> list[Row]:
    """The rows of the students a snapshot at ``at`` holds, in :func:`sample`'s order: those
    whose outcome, or whose finishing, came at or before ``at`` had already left."""
    finished = finished or {}
    return sorted((r for r in rows if not _by(outcomes.get(r["user_id"]), at)
                   and not _by(finished.get(r["user_id"]), at)),
                  key=lambda r: str(r["user_id"]))


class _RowsByHorizon:
    """The students' raw numbers at one snapshot, fetched once per set of the horizons that
    reach the SQL (a calibration tries a few; weights and normalisations reuse the rows)."""

    def __init__(self, conn: psycopg.Connection[Any], at: datetime, history_days: int) -> None:
        self._conn, self._at, self._history_days = conn, at, history_days
        self._rows: dict[tuple[float, ...], list[Row]] = {}

    def of(self, params: RiskParams) -> list[Row]:
        key = (params.window_days, params.deadline_days, params.trend_days,
               params.session_gap_minutes)
        if key not in self._rows:
            self._rows[key] = fetch_inputs(self._conn, now=self._at, params=params,
                                           history_days=self._history_days)
        return self._rows[key]


def _by(moment: datetime | None, at: datetime) -> bool:
    return moment is not None and moment <= at


def outcome_times(conn: psycopg.Connection[Any], outcome: str,
                  until: datetime) -> dict[Any, datetime]:
    """Each user's first ``outcome`` event at or before ``until``."""
    rows = fetch_all(conn, QUERIES["risk_outcomes"], {"outcome": outcome, "until": until})
    return {r["user_id"]: r["outcome_at"] for r in rows}


def calibrate(conn: psycopg.Connection[Any], *, current: RiskParams, outcome: str,
              fit_at: datetime, validate_at: datetime, until: datetime,
              threshold: float = 0.7, finished: str | None = "course_completed",
              history_days: int) -> Calibration:
    """Fit on the earlier period, judge both sets on the latest one (nothing is stored).

    ``finished``: an event type that marks a student who completed (left out of every
    later snapshot), on top of the leaving events every score leaves out
    (``course_withdrawn``, ``course_completed``); None for those alone. ``history_days``: how far back each snapshot
    reads a person's history — the deployment's anonymization age, as ``waymark score``
    reads it, so the fit sees the students and the quests the score will see.
    """
    fit_at, validate_at, until = as_utc(fit_at), as_utc(validate_at), as_utc(until)
    if not fit_at < validate_at < until:
        raise ValueError("calibration needs fit_at < validate_at < until (time-ordered split)")
    classes = student_classes(conn)
    fit_outcomes = outcome_times(conn, outcome, validate_at)  # nothing after validate_at
    fit_done = outcome_times(conn, finished, fit_at) if finished else {}
    fit_rows = _RowsByHorizon(conn, fit_at, history_days)

    def fit_sample(params: RiskParams) -> Sample:
        return sample(fit_rows.of(params), fit_outcomes, at=fit_at, until=validate_at,
                      params=params, classes=classes, finished=fit_done)

    candidate, (fit_values, fit_labels) = fit_params(fit_sample, current)
    val_done = outcome_times(conn, finished, validate_at) if finished else {}
    val_rows = _RowsByHorizon(conn, validate_at, history_days)
    val_outcomes = outcome_times(conn, outcome, until)

    def val_sample(params: RiskParams) -> Sample:
        return sample(val_rows.of(params), val_outcomes, at=validate_at, until=until,
                      params=params, classes=classes, finished=val_done)

    def val_present(params: RiskParams) -> list[Row]:  # in val_sample's order
        return sampled(val_rows.of(params), val_outcomes, at=validate_at, finished=val_done)

    def class_of_each(present: list[Row]) -> list[Any]:
        main = cohorts_of(present, classes).main_class
        return [main.get(r["user_id"]) for r in present]

    val_values, val_labels = val_sample(current)
    cand_values, cand_labels = val_sample(candidate)
    current_scores = scores_of(val_values, current.weights())
    cand_scores = scores_of(cand_values, candidate.weights())
    current_present, cand_present = val_present(current), val_present(candidate)
    same_students = ([r["user_id"] for r in current_present]
                     == [r["user_id"] for r in cand_present])
    return Calibration(
        candidate=candidate,
        current_figures=figures(current_scores, val_labels, threshold,
                                class_of_each(current_present)),
        candidate_figures=figures(cand_scores, cand_labels, threshold,
                                  class_of_each(cand_present)),
        fit_figures=figures(scores_of(fit_values, candidate.weights()), fit_labels, threshold),
        outcome=outcome, fit_at=fit_at, validate_at=validate_at, until=until,
        threshold=threshold,
        gain_interval=auc_gain_interval(current_scores, cand_scores, val_labels)
        if same_students else None)
