"""The factors of the dropout risk score, each 0–1, and the weighted sum that makes the score.

Pure functions of one student's raw numbers (a row of ``inputs.fetch_inputs``, docs/risk.md
"Who is scored") and the parameters, so a calibration can re-assess the same rows under
many parameter sets without touching the database. Risk = 0.40·inactivity + 0.25·low
login frequency + 0.20·low quest completion + 0.10·short sessions + 0.05·broken streak
with the seed weights (``DEFAULT_PARAMS``); the meaning of each factor and why it is
normalised so: docs/risk.md, "Factors and their normalisation".

Normalisations (each factor is clamped to 0–1; ``p`` is a :class:`RiskParams`):

* ``inactivity`` = days since the last activity / ``p.inactivity_days``.
* ``low_login_frequency`` = 1 − (active days per week) / ``p.expected_days_per_week``,
  where active days are UTC days with any event in the window (a login keeps a
  Supabase session alive for weeks, so "came back" is counted, not the token
  exchange) and weeks are the observed part of the window: from the first event ever
  (at least ``p.min_observed_days``, at most ``p.window_days``) — a new student is
  not blamed for days before they joined.
* ``low_quest_completion`` = 1 − completed / started, over distinct ``quest_id`` of
  the window (a quest completed in the window counts as started); no quest → 1.0.
* ``short_sessions`` = 1 − mean session minutes / ``p.session_target_minutes``.
  A session is a run of the student's events with gaps ≤ ``p.session_gap_minutes``;
  its length runs from its first event to the end of its last (``occurred_at`` plus
  ``duration_ms``). No session in the window → 1.0.
* ``broken_streak`` = 1 − current streak / longest streak of the window, streaks being
  consecutive active UTC days; the current streak is alive while its last day is
  today or yesterday. No active day in the window → 1.0.
* ``missed_deadlines`` (added for the OULAD calibration; weight 0 in the seed) =
  quests due in ``(now − p.deadline_days, now]`` and not completed by ``now`` / quests
  due then, read against ``p.deadline_full_share`` (the share of missed work that is a
  full sign of risk): min(1, share / ``p.deadline_full_share``); none due → 0. With
  the default 1.0 it is the plain share. A quest is due when the host app tracks
  ``quest_assigned`` for the student with ``event_data.quest_id`` and ``due_at``
  (ISO 8601); it is done by a ``quest_completed`` with the same ``quest_id``.
* ``late_completions`` (weight 0 in the seed) = quests due in the same deadline window
  that were completed, but after their ``due_at`` / quests due then, read against
  ``p.late_full_share`` likewise; none due → 0.
  (Missed and late never count the same quest: their plain shares add up to ≤ 1.)
* ``low_quest_scores`` (weight 0 in the seed) = (``p.xp_target`` − mean ``xp``) /
  (``p.xp_target`` − ``p.xp_floor``), i.e. 0 at the target, 1 at the floor (0 by
  default: 1 − mean ``xp`` / ``p.xp_target``), over
  quests completed in ``(now − p.deadline_days, now]`` (a quest completed twice counts
  once, with its best ``xp``); completions without a numeric ``xp`` are left out and
  none left → 0 (nothing to judge; not handing work in is ``missed_deadlines``).
  With ``p.missed_at_floor`` = 1 (a switch, 0 by default), each quest missed as in
  ``missed_deadlines`` joins the mean as a score of ``p.xp_floor``.
* ``declining_activity`` (weight 0 in the seed) = 1 − (recent rate / earlier rate), where
  the recent rate is active days per day in ``(now − p.trend_days, now]`` and the
  earlier rate is active days per day in the rest of the observed window (the window's
  part after the first event, as for login frequency, minus the recent days). A student
  compared with their own earlier weeks, not with anyone else. No earlier active day
  (or no earlier part, e.g. ``trend_days ≥ window_days``) → 0; more active than before → 0.

* ``below_cohort_activity`` (weight 0 in the seed) = 1 − active days / the cohort's
  median active days over the same window, where the cohort is every student scored
  with them (the whole visible student population; a class when the caller scores a
  class's students). At or above the median → 0; no active day → 1; a cohort whose
  median is 0 (most students idle) → 0: nobody is behind an idle class.
* ``below_cohort_scores`` (weight 0 in the seed) = (cohort median of mean ``xp`` −
  the student's mean ``xp``) / that median, over the same quests as ``low_quest_scores``
  (students without a scored quest are left out of the median). At or above the median
  → 0; ``xp`` 0 → 1; no scored quest of their own, or no cohort median above 0 → 0.
* ``days_behind_cohort`` (weight 0 in the seed) = (the cohort's median active days − the
  student's active days) / ``p.cohort_gap_days``: how many active days of the window the
  student is behind their class, counted in days rather than as a share of the median.
  In a class that is barely online (median 2 days) an idle student is 2 days behind,
  not "100 % below the class" as ``below_cohort_activity`` says, so a quiet class does
  not look at risk as a whole. At or above the median → 0; no cohort median → 0.
* ``missed_more_than_cohort`` (weight 0 in the seed) = (the share of quests due that the
  student missed, as ``missed_deadlines`` counts them − the cohort's median share) /
  ``p.cohort_share_gap``: missing work against what the class misses, since a class whose
  students all skip the optional quizzes is not a class at risk. The median is over the
  cohort's students who had work due. At or below the median → 0; nothing due, or no one
  in the cohort had work due → 0.
* ``late_more_than_cohort`` (weight 0 in the seed) = the same for quests handed in late
  (``late_completions``' count) against the cohort's median share of late work.

Activity: every event of the student counts as activity except ``quest_assigned``,
which the app records *for* the student (it may be the only event of a student who
never showed up: they are scored, with inactivity 1.0). Factors with weight 0 are
left out of an assessment, so the seed defaults report the five seed factors.

The score is rounded to 6 decimals before its level is chosen, so 0.4 + 0.2 is 0.6.
Each factor also says itself in one sentence (``Factor.explanation``, :mod:`.explain`),
made from its ``detail`` alone; that is why some details carry their window and cohort.
"""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backend.db import Row
from backend.services.analytics.risk.explain import explain
from backend.services.analytics.risk.params import (
    DEFAULT_PARAMS,
    RiskParams,
    level_for,
    risk_level_for,
)


@dataclass(frozen=True)
class Factor:
    """One named part of a risk score: its 0–1 value, weight, and the raw numbers behind it."""

    name: str
    value: float
    weight: float
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def contribution(self) -> float:
        """What this factor adds to the score (weight · value)."""
        return self.weight * self.value

    @property
    def explanation(self) -> str:
        """The factor in words, from its detail (``explain.explain``)."""
        return explain(self.name, self.detail)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view with value, weight, contribution, detail and the explanation."""
        return {"name": self.name, "value": round(self.value, 4), "weight": self.weight,
                "contribution": round(self.contribution, 4), "detail": self.detail,
                "explanation": self.explanation}


@dataclass(frozen=True)
class RiskAssessment:
    """A student's risk at one moment: score 0–1, engagement level, and why (factors)."""

    user_id: uuid.UUID
    score: float
    level: str
    factors: list[Factor]
    computed_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (user id as text, time as ISO 8601)."""
        return {"user_id": str(self.user_id), "score": round(self.score, 4),
                "risk_level": risk_level_for(self.score), "engagement_level": self.level,
                "factors": [f.as_dict() for f in self.factors],
                "computed_at": self.computed_at.isoformat()}


@dataclass(frozen=True)
class Cohort:
    """The cohort medians the cohort-relative factors compare a student with (None: no one).

    ``scope``: ``"class"`` or ``"everyone"`` (every student scored together), so a factor's
    sentence can say whose median it is.
    """

    median_active_days: float | None = None
    median_xp: float | None = None
    scope: str = "everyone"
    median_missed_share: float | None = None
    median_late_share: float | None = None


def cohort_of(rows: Sequence[Row], scope: str = "everyone") -> Cohort:
    """The medians of the students in ``rows`` (a class, or every student scored together);
    the shares of work missed and late over the students who had work due."""
    active = [float(r["active_days"]) for r in rows]
    scored = [float(r["mean_xp"]) for r in rows
              if int(r["scored_quests"]) and r["mean_xp"] is not None]
    due = [r for r in rows if int(r["quests_due"])]
    return Cohort(median_active_days=_median(active), median_xp=_median(scored), scope=scope,
                  median_missed_share=_median([int(r["quests_missed"]) / int(r["quests_due"])
                                               for r in due]),
                  median_late_share=_median([int(r["quests_late"]) / int(r["quests_due"])
                                             for r in due]))


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


#: A class is a student's cohort only with at least this many students scored in it (a
#: median of two says little); smaller classes fall back to everyone scored together.
MIN_CLASS_COHORT = 5


@dataclass(frozen=True)
class Cohorts:
    """Whom each student is compared with: their class, else everyone scored together.

    ``by_class``: the medians of each class with at least :data:`MIN_CLASS_COHORT` students
    scored, and how many; ``main_class``: each student's class among those (the largest,
    ties by id).
    """

    population: Cohort
    by_class: Mapping[Any, tuple[Cohort, int]] = field(default_factory=dict)
    main_class: Mapping[Any, Any] = field(default_factory=dict)

    def of(self, user_id: Any) -> Cohort:
        class_id = self.main_class.get(user_id)
        return self.by_class[class_id][0] if class_id is not None else self.population

    @classmethod
    def of_classes(cls, population: Cohort, by_class: Mapping[Any, tuple[Cohort, int]],
                   classes: Mapping[Any, Sequence[Any]]) -> Cohorts:
        """Each student's main class: the largest of theirs that has medians."""
        main = {}
        for user_id, theirs in classes.items():
            usable = [c for c in theirs if c in by_class]
            if usable:
                main[user_id] = min(usable, key=lambda c: (-by_class[c][1], str(c)))
        return cls(population, by_class, main)


def cohorts_of(rows: Sequence[Row], classes: Mapping[Any, Sequence[Any]],
               min_size: int = MIN_CLASS_COHORT) -> Cohorts:
    """Each student's cohort: the class they attend (the largest, if several; ties by id)
    when at least ``min_size`` of its students are in ``rows``, otherwise all of ``rows``.

    ``classes`` maps a student to the classes they attend (``class_memberships``); a
    deployment without classes gets the whole population for everyone, as before.
    """
    members: dict[Any, list[Row]] = {}
    for row in rows:
        for class_id in classes.get(row["user_id"], ()):
            members.setdefault(class_id, []).append(row)
    by_class = {c: (cohort_of(m, "class"), len(m))
                for c, m in members.items() if len(m) >= min_size}
    scored = {row["user_id"]: classes.get(row["user_id"], ()) for row in rows}
    return Cohorts.of_classes(cohort_of(rows), by_class, scored)


def rank(assessments: list[RiskAssessment]) -> list[RiskAssessment]:
    """Highest risk first; ties in user id order so the answer is stable."""
    return sorted(assessments, key=lambda a: (-a.score, str(a.user_id)))


def assess(row: Row, *, now: datetime, params: RiskParams = DEFAULT_PARAMS,
           cohort: Cohort | None = None) -> RiskAssessment:
    """Turn one student's raw numbers (a row of ``fetch_inputs``) into a scored assessment."""
    now = as_utc(now)
    factors = all_factors(row, now=now, params=params, cohort=cohort or Cohort())
    score = round(min(1.0, max(0.0, sum(f.contribution for f in factors))), 6)
    return RiskAssessment(user_id=row["user_id"], score=score, level=level_for(score),
                          factors=[f for f in factors if f.weight > 0], computed_at=now)


def all_factors(row: Row, *, now: datetime, params: RiskParams, cohort: Cohort) -> list[Factor]:
    """Every factor, weight 0 included (a calibration reads their values once)."""
    return [
        inactivity_factor(row, now, params),
        login_factor(row, now, params),
        quest_factor(row, params),
        session_factor(row, params),
        streak_factor(row, params),
        deadline_factor(row, params),
        late_factor(row, params),
        score_factor(row, params),
        trend_factor(row, now, params),
        cohort_activity_factor(row, cohort, params),
        cohort_score_factor(row, cohort, params),
        cohort_gap_factor(row, cohort, params),
        cohort_missed_factor(row, cohort, params),
        cohort_late_factor(row, cohort, params),
    ]


def as_utc(now: datetime) -> datetime:
    """``now`` in UTC; a naive time is refused (it would silently shift every window)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(UTC))")
    return now.astimezone(UTC)


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def _days_between(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds() / 86400.0)


def inactivity_factor(row: Row, now: datetime, params: RiskParams) -> Factor:
    """Days since the last activity over the horizon: 0 just now, 1 after ``inactivity_days``."""
    last: datetime | None = row["last_at"]
    if last is None:  # only quest assignments: never showed up
        return Factor("inactivity", 1.0, params.inactivity_weight,
                      {"days_since_last_activity": None, "last_active": None,
                       "horizon_days": params.inactivity_days})
    days = _days_between(last, now)
    return Factor("inactivity", _clamp(days / params.inactivity_days), params.inactivity_weight,
                  {"days_since_last_activity": round(days, 2), "last_active": last.isoformat(),
                   "horizon_days": params.inactivity_days})


def _observed_days(row: Row, now: datetime, params: RiskParams) -> float:
    """The part of the window the student could have been active in (see login_factor)."""
    return min(float(params.window_days),
               max(params.min_observed_days, _days_between(row["first_at"], now)))


def login_factor(row: Row, now: datetime, params: RiskParams) -> Factor:
    """How far active days per week fall short of the expected number."""
    observed = _observed_days(row, now, params)
    per_week = int(row["active_days"]) / (observed / 7.0)
    return Factor("low_login_frequency", _clamp(1.0 - per_week / params.expected_days_per_week),
                  params.login_weight,
                  {"active_days": int(row["active_days"]), "login_events": int(row["login_events"]),
                   "observed_days": round(observed, 2), "active_days_per_week": round(per_week, 2),
                   "expected_days_per_week": params.expected_days_per_week})


def quest_factor(row: Row, params: RiskParams) -> Factor:
    """The share of quests started in the window that were not completed (none started: 1)."""
    started, completed = int(row["quests_started"]), int(row["quests_completed"])
    value = 1.0 - completed / started if started else 1.0
    return Factor("low_quest_completion", _clamp(value), params.quest_weight,
                  {"quests_started": started, "quests_completed": completed,
                   "window_days": params.window_days})


def session_factor(row: Row, params: RiskParams) -> Factor:
    """How far the mean session falls short of the target length (no session: 1)."""
    sessions = int(row["sessions"])
    minutes = float(row["avg_session_minutes"] or 0.0)
    value = 1.0 - minutes / params.session_target_minutes if sessions else 1.0
    return Factor("short_sessions", _clamp(value), params.session_weight,
                  {"sessions": sessions, "avg_session_minutes": round(minutes, 2),
                   "target_minutes": params.session_target_minutes,
                   "window_days": params.window_days})


def streak_factor(row: Row, params: RiskParams) -> Factor:
    """How much of the window's longest streak of active days is lost now (none: 1)."""
    longest, current = int(row["longest_streak"]), int(row["current_streak"])
    value = 1.0 - current / longest if longest else 1.0
    return Factor("broken_streak", _clamp(value), params.streak_weight,
                  {"current_streak_days": current, "longest_streak_days": longest})


def deadline_factor(row: Row, params: RiskParams) -> Factor:
    """The share of quests due in the deadline window still not completed (none due: 0)."""
    due, missed = int(row["quests_due"]), int(row["quests_missed"])
    detail: dict[str, Any] = {"quests_due": due, "quests_missed": missed,
                              "window_days": params.deadline_days}
    return Factor("missed_deadlines", _share(missed, due, params.deadline_full_share, detail),
                  params.deadline_weight, detail)


def late_factor(row: Row, params: RiskParams) -> Factor:
    """The share of quests due in the deadline window that were completed after ``due_at``."""
    due, late = int(row["quests_due"]), int(row["quests_late"])
    detail: dict[str, Any] = {"quests_due": due, "quests_late": late,
                              "window_days": params.deadline_days}
    return Factor("late_completions", _share(late, due, params.late_full_share, detail),
                  params.late_weight, detail)


def _share(count: int, due: int, full_share: float, detail: dict[str, Any]) -> float:
    """``count / due`` read against the share at which it is a full sign of risk.

    A student who misses half of their work is about as likely to leave as one who
    misses all of it, so a preset may say the factor is full at a share below 1:
    value = min(1, share / full_share). Nothing due → 0. With the default 1.0 this is
    the plain share and ``detail`` is left as it was; otherwise it names the share.
    """
    if full_share != 1.0:
        detail["full_at_share"] = full_share
    return _clamp(count / due / full_share) if due else 0.0


def score_factor(row: Row, params: RiskParams) -> Factor:
    """How far the mean ``xp`` of recently completed quests falls short of ``xp_target``.

    0 at ``xp_target`` or above, 1 at ``xp_floor`` or below, linear in between (the
    floor is 0 by default: 1 − mean / target). With ``missed_at_floor`` 1, each quest
    due in the deadline window and not completed joins the mean with ``xp_floor``:
    a student who hands nothing in then scores 1 here, not 0 (the score of work not
    handed in is as low as it gets; without it such a student could not reach 0.7 in
    the calibrated preset). Otherwise nothing scored → 0, not 1: work not handed in is
    already ``missed_deadlines``, and a host app whose quests carry no ``xp`` must not
    make everyone look at risk.
    """
    scored = int(row["scored_quests"])
    mean = float(row["mean_xp"]) if scored and row["mean_xp"] is not None else None
    missed = int(row["quests_missed"]) if params.missed_at_floor else 0
    if missed:  # each quest due and not handed in counts as work scored at the floor
        total = (mean * scored if mean is not None else 0.0) + params.xp_floor * missed
        mean = total / ((scored if mean is not None else 0) + missed)
    span = params.xp_target - params.xp_floor
    value = _clamp((params.xp_target - mean) / span) if mean is not None else 0.0
    detail: dict[str, Any] = {"scored_quests": scored,
                              "mean_xp": round(mean, 2) if mean is not None else None,
                              "xp_target": params.xp_target, "window_days": params.deadline_days}
    if params.xp_floor:
        detail["xp_floor"] = params.xp_floor
    if params.missed_at_floor:
        detail["missed_at_floor"] = missed
    return Factor("low_quest_scores", value, params.score_weight, detail)


def trend_factor(row: Row, now: datetime, params: RiskParams) -> Factor:
    """How far the recent rate of active days fell below the student's own earlier rate."""
    recent_days = min(params.trend_days, float(params.window_days))
    earlier_span = _observed_days(row, now, params) - recent_days
    recent = int(row["recent_active_days"])
    earlier = int(row["active_days"]) - recent
    recent_rate = recent / recent_days
    earlier_rate = earlier / earlier_span if earlier_span >= 1.0 else 0.0
    value = _clamp(1.0 - recent_rate / earlier_rate) if earlier_rate > 0 else 0.0
    return Factor("declining_activity", value, params.trend_weight,
                  {"recent_active_days": recent, "recent_days": recent_days,
                   "earlier_active_days": earlier,
                   "earlier_days": round(max(0.0, earlier_span), 2),
                   "recent_per_week": round(7 * recent_rate, 2),
                   "earlier_per_week": round(7 * earlier_rate, 2)})


def cohort_activity_factor(row: Row, cohort: Cohort, params: RiskParams) -> Factor:
    """How far the student's active days fall below the cohort median over the same days."""
    active = float(row["active_days"])
    median = cohort.median_active_days
    value = _clamp(1.0 - active / median) if median else 0.0
    return Factor("below_cohort_activity", value, params.cohort_activity_weight,
                  {"active_days": int(active), "cohort_median_active_days": median,
                   "cohort": cohort.scope, "window_days": params.window_days})


def cohort_score_factor(row: Row, cohort: Cohort, params: RiskParams) -> Factor:
    """How far the student's mean ``xp`` falls below the cohort median (nothing to judge: 0)."""
    scored = int(row["scored_quests"])
    mean = float(row["mean_xp"]) if scored and row["mean_xp"] is not None else None
    median = cohort.median_xp
    value = _clamp((median - mean) / median) if mean is not None and median else 0.0
    return Factor("below_cohort_scores", value, params.cohort_score_weight,
                  {"mean_xp": round(mean, 2) if mean is not None else None,
                   "cohort_median_xp": median, "cohort": cohort.scope,
                   "window_days": params.deadline_days})


def cohort_gap_factor(row: Row, cohort: Cohort, params: RiskParams) -> Factor:
    """Active days behind the cohort median, out of ``cohort_gap_days`` (at or above it: 0).

    A difference, not a ratio: how far behind the class a student is in days means the
    same in a busy class and in a quiet one (bench/README.md, "2013B → 2013J").
    """
    active = float(row["active_days"])
    median = cohort.median_active_days
    value = _clamp((median - active) / params.cohort_gap_days) if median else 0.0
    return Factor("days_behind_cohort", value, params.cohort_gap_weight,
                  {"active_days": int(active), "cohort_median_active_days": median,
                   "full_at_days_behind": params.cohort_gap_days, "cohort": cohort.scope,
                   "window_days": params.window_days})


def cohort_missed_factor(row: Row, cohort: Cohort, params: RiskParams) -> Factor:
    """How far the share of work due that the student missed lies above the cohort's median.

    What missing a deadline means differs between classes (in one most students skip the
    optional quizzes, in another nobody misses anything); above the class's own median share,
    by ``cohort_share_gap`` or more, is a full sign (bench/README.md, "2013B → 2013J").
    """
    return _share_above("missed_more_than_cohort", row, "quests_missed",
                        cohort.median_missed_share, cohort, params,
                        params.cohort_missed_weight)


def cohort_late_factor(row: Row, cohort: Cohort, params: RiskParams) -> Factor:
    """How far the share of work due that the student handed in late lies above the cohort's
    median share (read as :func:`cohort_missed_factor`)."""
    return _share_above("late_more_than_cohort", row, "quests_late", cohort.median_late_share,
                        cohort, params, params.cohort_late_weight)


def _share_above(name: str, row: Row, key: str, median: float | None, cohort: Cohort,
                 params: RiskParams, weight: float) -> Factor:
    """(the student's share − the cohort's median share) / ``cohort_share_gap``, 0–1;
    nothing due, or no cohort median, → 0."""
    due, count = int(row["quests_due"]), int(row[key])
    value = _clamp((count / due - median) / params.cohort_share_gap) \
        if due and median is not None else 0.0
    return Factor(name, value, weight,
                  {"quests_due": due, key: count, "cohort_median_share": median,
                   "full_at_share_above": params.cohort_share_gap, "cohort": cohort.scope,
                   "window_days": params.deadline_days})
