"""The parameters of the risk score: weights, horizons, named presets, and the levels.

Kept apart from the factors so the app's settings (``WAYMARK_RISK_*``) can be read and
checked at start-up without any SQL, and so one :class:`RiskParams` value names exactly
how an assessment was made: stored assessments are looked up by the key of these
parameters (docs/analytics.md, "At-risk students"). What each field does: docs/risk.md,
"Parameters".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import timedelta
from typing import Any

from backend.config import ConfigError, Settings
from backend.taxonomy import SESSION_GAP


class RiskParamsError(ValueError):
    """Risk parameters that cannot make a 0–1 score; the message says which and why."""


#: Horizons that may be 0 (a floor); every other horizon must be positive.
ZERO_ALLOWED = frozenset({"xp_floor", "missed_at_floor"})
#: Switches: parameters that are 0 (off) or 1 (on); numbers like every other one, so
#: ``WAYMARK_RISK_MISSED_AT_FLOOR=1`` and the stored parameter key work unchanged.
SWITCHES = frozenset({"missed_at_floor"})


#: The weight fields of :class:`RiskParams`, in the order of ``RiskParams.weights()``.
WEIGHT_FIELDS = ("inactivity_weight", "login_weight", "quest_weight", "session_weight",
                 "streak_weight", "deadline_weight", "late_weight", "score_weight",
                 "trend_weight", "cohort_activity_weight", "cohort_score_weight",
                 "cohort_gap_weight", "cohort_missed_weight", "cohort_late_weight")


@dataclass(frozen=True)
class RiskParams:
    """Weights and normalisation horizons of the risk score (the seed of docs/risk.md by default).

    ``session_gap_minutes`` defaults to ``backend.taxonomy.SESSION_GAP``, the gap the
    writer's stored ``user_sessions`` use, so there is one notion of a session.
    """

    inactivity_weight: float = 0.40
    login_weight: float = 0.25
    quest_weight: float = 0.20
    session_weight: float = 0.10
    streak_weight: float = 0.05
    deadline_weight: float = 0.0
    late_weight: float = 0.0
    score_weight: float = 0.0
    trend_weight: float = 0.0
    cohort_activity_weight: float = 0.0
    cohort_score_weight: float = 0.0
    cohort_gap_weight: float = 0.0
    cohort_missed_weight: float = 0.0
    cohort_late_weight: float = 0.0
    window_days: int = 30
    inactivity_days: float = 14.0
    expected_days_per_week: float = 3.0
    min_observed_days: float = 7.0
    session_target_minutes: float = 15.0
    session_gap_minutes: float = SESSION_GAP / timedelta(minutes=1)
    deadline_days: float = 30.0
    xp_target: float = 100.0
    trend_days: float = 14.0
    xp_floor: float = 0.0
    deadline_full_share: float = 1.0
    late_full_share: float = 1.0
    missed_at_floor: float = 0.0
    cohort_gap_days: float = 10.0
    cohort_share_gap: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise RiskParamsError(f"risk parameter {f.name} must be a number, not {value!r}")
            if f.name.endswith("_weight") and value < 0:
                raise RiskParamsError(f"risk weight {f.name} must not be negative, not {value}")
            if f.name in ZERO_ALLOWED and value < 0:
                raise RiskParamsError(f"risk parameter {f.name} must not be negative, not {value}")
            if not f.name.endswith("_weight") and f.name not in ZERO_ALLOWED and value <= 0:
                raise RiskParamsError(f"risk parameter {f.name} must be positive, not {value}")
        for name in SWITCHES:
            if getattr(self, name) not in (0, 1):
                raise RiskParamsError(f"risk parameter {name} is a switch, 0 or 1, "
                                      f"not {getattr(self, name)}")
        for name in ("deadline_full_share", "late_full_share", "cohort_share_gap"):
            if getattr(self, name) > 1:
                raise RiskParamsError(f"risk parameter {name} is a share of the quests due, "
                                      f"at most 1, not {getattr(self, name)}")
        if self.xp_floor >= self.xp_target:
            raise RiskParamsError(f"risk parameter xp_floor ({self.xp_floor:g}) must be below "
                                  f"xp_target ({self.xp_target:g})")
        total = sum(self.weights().values())
        if abs(total - 1.0) > 1e-6:
            raise RiskParamsError(
                f"risk weights must add up to 1 so the score stays 0–1; they add up to {total:g}")

    def weights(self) -> dict[str, float]:
        """Each factor's weight by factor name, in the order factors are reported."""
        return {
            "inactivity": self.inactivity_weight,
            "low_login_frequency": self.login_weight,
            "low_quest_completion": self.quest_weight,
            "short_sessions": self.session_weight,
            "broken_streak": self.streak_weight,
            "missed_deadlines": self.deadline_weight,
            "late_completions": self.late_weight,
            "low_quest_scores": self.score_weight,
            "declining_activity": self.trend_weight,
            "below_cohort_activity": self.cohort_activity_weight,
            "below_cohort_scores": self.cohort_score_weight,
            "days_behind_cohort": self.cohort_gap_weight,
            "missed_more_than_cohort": self.cohort_missed_weight,
            "late_more_than_cohort": self.cohort_late_weight,
        }

    def with_weights(self, weights: Mapping[str, float]) -> RiskParams:
        """The same horizons with other weights (by factor name, as :meth:`weights`)."""
        field_of = dict(zip(self.weights(), WEIGHT_FIELDS, strict=True))
        return RiskParams.from_mapping({field_of[n]: float(w) for n, w in weights.items()},
                                       base=self)

    @property
    def uses_cohorts(self) -> bool:
        """Whether a cohort factor counts (else cohorts need not be looked up at all)."""
        return (self.cohort_activity_weight > 0 or self.cohort_score_weight > 0
                or self.cohort_gap_weight > 0 or self.cohort_missed_weight > 0
                or self.cohort_late_weight > 0)

    @property
    def session_gap(self) -> timedelta:
        """The longest pause inside one session, as the SQL's ``%(gap)s`` interval."""
        return timedelta(minutes=self.session_gap_minutes)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *,
                     base: RiskParams | None = None) -> RiskParams:
        """Parameters from a mapping (e.g. app config), keys as field names or WAYMARK_RISK_*.

        ``preset`` (``seed``, the default, or ``oulad-2013``, see :data:`PRESETS`) picks
        the starting point; the other keys override single values of it. Unknown
        ``WAYMARK_RISK_*`` keys are an error (a typo must not silently fall back).
        """
        names = {f.name: f for f in fields(cls)}
        changes: dict[str, Any] = {}
        for key, raw in values.items():
            name = str(key)
            prefixed = name.upper().startswith("WAYMARK_RISK_")
            if prefixed:
                name = name[len("WAYMARK_RISK_"):].lower()
            if name == "preset":
                base = preset(str(raw)) if raw not in (None, "") else base
                continue
            if name not in names:
                if prefixed:
                    raise RiskParamsError(f"unknown risk parameter {key!r}; known: preset, "
                                          + ", ".join(sorted(names)))
                continue
            if raw is None or raw == "":
                continue
            try:
                changes[name] = int(raw) if name == "window_days" else float(raw)
            except (TypeError, ValueError):
                raise RiskParamsError(f"risk parameter {key} must be a number, not {raw!r}") \
                    from None
        return replace(base or cls(), **changes)

    def as_dict(self) -> dict[str, float]:
        """The parameters as plain numbers (for JSON, reports and stored assessments)."""
        return {k: float(v) for k, v in asdict(self).items()}


DEFAULT_PARAMS = RiskParams()


def params_from_settings(settings: Settings) -> RiskParams:
    """The parameters of ``WAYMARK_RISK_*`` (read once with the settings).

    A wrong value is a ConfigError at start-up, not a failure on the first at-risk request.
    """
    try:
        return RiskParams.from_mapping(settings.extra)
    except RiskParamsError as exc:
        raise ConfigError(str(exc)) from None


#: Calibrated on the OULAD 2013 presentations only (bench/risk_oulad.py; figures and
#: method in docs/risk.md): still a readable weighted sum of named factors. The work a
#: student hands in carries the signal there (low quest scores, missed and late
#: deadlines, over the whole 84 days so far), plus activity against their own earlier
#: weeks. Days since the last activity, login frequency and session length added nothing
#: once those were in, so they have weight 0 (and their horizons stay the seed's).
#: Its scale is calibrated too, so 0.7 and the levels mean something: low quest scores
#: run from 0 at xp 100 to 1 at xp 60 (the mean of work handed in clusters at 60–85),
#: a missed quest counts as work scored 60, and missing or being late with half of the
#: work due is a full sign of risk.
CALIBRATED_PARAMS = RiskParams(
    inactivity_weight=0.0, login_weight=0.0, quest_weight=0.0, session_weight=0.0,
    streak_weight=0.05, deadline_weight=0.20, late_weight=0.15, score_weight=0.50,
    trend_weight=0.10, window_days=56, deadline_days=84.0, xp_target=100.0, trend_days=21.0,
    xp_floor=60.0, missed_at_floor=1.0, deadline_full_share=0.5, late_full_share=0.5)

#: Named starting points for ``WAYMARK_RISK_PRESET``.
PRESETS: dict[str, RiskParams] = {"seed": DEFAULT_PARAMS, "oulad-2013": CALIBRATED_PARAMS}


def preset(name: str) -> RiskParams:
    """The parameter set called ``name`` (see :data:`PRESETS`)."""
    try:
        return PRESETS[name.strip().lower()]
    except KeyError:
        raise RiskParamsError(f"unknown risk preset {name!r}; known: "
                              + ", ".join(PRESETS)) from None


#: The engagement levels, from least to most at risk.
LEVELS = ("high", "medium", "low", "at_risk")


def level_for(score: float) -> str:
    """The engagement level of a risk score: high < 0.3 ≤ medium ≤ 0.6 < low ≤ 0.8 < at_risk."""
    if score < 0.3:
        return "high"
    if score <= 0.6:
        return "medium"
    if score <= 0.8:
        return "low"
    return "at_risk"


#: The risk levels, from least to most at risk: the same cut points as :data:`LEVELS`,
#: named for the risk rather than the engagement, so "high" never reads as "fine".
RISK_LEVELS = ("low", "medium", "high", "critical")


def risk_level_for(score: float) -> str:
    """The risk level of a score: low < 0.3 ≤ medium ≤ 0.6 < high ≤ 0.8 < critical."""
    return RISK_LEVELS[LEVELS.index(level_for(score))]
