"""Explainable dropout risk (DESIGN §7): a weighted sum of named factors, each 0–1.

Risk = 0.40·inactivity + 0.25·low login frequency + 0.20·low quest completion
+ 0.10·short sessions + 0.05·broken streak (the seed weights, ``DEFAULT_PARAMS``).
Every factor is derived from ``user_activity_events`` alone (sessions included), so
back-filled events score exactly like tracked ones. One set-based query
(``RISK_INPUTS_SQL``) gathers the raw numbers of every student the connection may see
(RLS applies); this module turns them into factors with the normalisations below.

Who is scored: a *student* is any user with at least one event at or before ``now``
who is not a parent in ``guardian_links``. A student with no event in the window is
still scored (inactivity 1.0). Events after ``now`` are ignored, so a replay or a test
can score the past. The window is ``(now − window_days, now]``; days are UTC days.

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

Activity: every event of the student counts as activity except ``quest_assigned``,
which the app records *for* the student (it may be the only event of a student who
never showed up: they are scored, with inactivity 1.0). Factors with weight 0 are
left out of an assessment, so the seed defaults report DESIGN's five factors.

The score is rounded to 6 decimals before its level is chosen, so 0.4 + 0.2 is 0.6.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from backend.config import ConfigError, Settings
from backend.db import Row, fetch_all


class RiskParamsError(ValueError):
    """Risk parameters that cannot make a 0–1 score; the message says which and why."""


#: Horizons that may be 0 (a floor); every other horizon must be positive.
ZERO_ALLOWED = frozenset({"xp_floor", "missed_at_floor"})
#: Switches: parameters that are 0 (off) or 1 (on); numbers like every other one, so
#: ``WAYMARK_RISK_MISSED_AT_FLOOR=1`` and the stored parameter key work unchanged.
SWITCHES = frozenset({"missed_at_floor"})


@dataclass(frozen=True)
class RiskParams:
    """Weights and normalisation horizons of the risk score (DESIGN §7 seed by default)."""

    inactivity_weight: float = 0.40
    login_weight: float = 0.25
    quest_weight: float = 0.20
    session_weight: float = 0.10
    streak_weight: float = 0.05
    deadline_weight: float = 0.0
    late_weight: float = 0.0
    score_weight: float = 0.0
    trend_weight: float = 0.0
    window_days: int = 30
    inactivity_days: float = 14.0
    expected_days_per_week: float = 3.0
    min_observed_days: float = 7.0
    session_target_minutes: float = 15.0
    session_gap_minutes: float = 30.0
    deadline_days: float = 30.0
    xp_target: float = 100.0
    trend_days: float = 14.0
    xp_floor: float = 0.0
    deadline_full_share: float = 1.0
    late_full_share: float = 1.0
    missed_at_floor: float = 0.0

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
        for name in ("deadline_full_share", "late_full_share"):
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
        }

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
    """The parameters of ``WAYMARK_RISK_*`` (read once with the settings); a wrong value is a
    ConfigError at start-up, not a failure on the first at-risk request."""
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

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view with value, weight, contribution and detail."""
        return {"name": self.name, "value": round(self.value, 4), "weight": self.weight,
                "contribution": round(self.contribution, 4), "detail": self.detail}


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
                "level": self.level, "factors": [f.as_dict() for f in self.factors],
                "computed_at": self.computed_at.isoformat()}


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


#: Event types the app records *for* a student; they do not show the student active.
NON_ACTIVITY_TYPES: tuple[str, ...] = ("quest_assigned",)

#: The students to score: every user id the connection may see (``RISK_INPUTS_SQL``).
ALL_IDS_CTE = """
WITH RECURSIVE ids AS (
    -- Every user id, one index probe each (a skip scan), or just the ones asked for.
    (SELECT e.user_id FROM public.user_activity_events e
     WHERE %(user_ids)s::uuid[] IS NULL AND e.user_id IS NOT NULL
     ORDER BY e.user_id LIMIT 1)
    UNION ALL
    SELECT (SELECT e.user_id FROM public.user_activity_events e
            WHERE e.user_id > ids.user_id ORDER BY e.user_id LIMIT 1)
    FROM ids WHERE ids.user_id IS NOT NULL
)"""

#: With ``user_ids`` given the skip scan above finds nothing (its anchor is false), but it
#: is still planned, as a parallel sort whose workers start for nothing (~60–200 ms at
#: 10M events). The same query without it: ``seen`` takes the given ids alone, as before.
GIVEN_IDS_CTE = """
WITH ids AS (SELECT NULL::uuid AS user_id WHERE false)"""

RISK_INPUTS_BODY = """, seen AS (
    SELECT i.user_id,
           (SELECT min(e.occurred_at) FROM public.user_activity_events e
            WHERE e.user_id = i.user_id AND e.occurred_at <= %(now)s) AS first_at,
           (SELECT max(e.occurred_at) FROM public.user_activity_events e
            WHERE e.user_id = i.user_id AND e.occurred_at <= %(now)s
              AND e.event_type <> ALL (%(passive)s::text[])) AS last_at
    FROM (SELECT user_id FROM ids WHERE user_id IS NOT NULL
          UNION
          SELECT unnest(%(user_ids)s::uuid[])) i
), students AS (
    SELECT s.* FROM seen s
    WHERE s.first_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM public.guardian_links g WHERE g.parent_id = s.user_id)
), win AS (
    SELECT e.user_id, e.occurred_at, e.event_type, e.duration_ms,
           e.event_data ->> 'quest_id' AS quest_id,
           lag(e.occurred_at) OVER (PARTITION BY e.user_id ORDER BY e.occurred_at) AS prev_at
    FROM public.user_activity_events e
    WHERE e.occurred_at > %(since)s AND e.occurred_at <= %(now)s
      AND e.user_id IS NOT NULL
      AND (%(user_ids)s::uuid[] IS NULL OR e.user_id = ANY (%(user_ids)s::uuid[]))
      AND e.event_type <> ALL (%(passive)s::text[])
), numbered AS (
    SELECT user_id, occurred_at, duration_ms,
           count(*) FILTER (WHERE prev_at IS NULL OR occurred_at - prev_at > %(gap)s)
               OVER (PARTITION BY user_id ORDER BY occurred_at
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session_no
    FROM win
), sessions AS (
    SELECT user_id,
           extract(epoch FROM max(occurred_at + coalesce(duration_ms, 0) * interval '1 ms')
                              - min(occurred_at)) AS seconds
    FROM numbered GROUP BY user_id, session_no
), session_stats AS (
    SELECT user_id, count(*) AS sessions, avg(seconds) / 60.0 AS avg_session_minutes
    FROM sessions GROUP BY user_id
), days AS (
    SELECT DISTINCT user_id, (occurred_at AT TIME ZONE 'UTC')::date AS day FROM win
), runs AS (
    SELECT user_id, max(day) AS last_day, count(*) AS length
    FROM (SELECT user_id, day,
                 day - (row_number() OVER (PARTITION BY user_id ORDER BY day))::int AS island
          FROM days) d
    GROUP BY user_id, island
), streaks AS (
    SELECT user_id, sum(length) AS active_days, max(length) AS longest_streak,
           coalesce(max(length) FILTER (WHERE last_day >= %(today)s::date - 1), 0)
               AS current_streak
    FROM runs GROUP BY user_id
), recent AS (
    SELECT user_id, count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date) AS recent_active_days
    FROM win WHERE occurred_at > %(recent_since)s GROUP BY user_id
), quests AS (
    SELECT user_id,
           count(DISTINCT quest_id) FILTER (
               WHERE event_type IN ('quest_started', 'quest_completed')) AS quests_started,
           count(DISTINCT quest_id) FILTER (WHERE event_type = 'quest_completed')
               AS quests_completed
    FROM win WHERE quest_id IS NOT NULL
    GROUP BY user_id
), logins AS (
    SELECT user_id, count(*) AS login_events
    FROM win WHERE event_type = 'login_success' GROUP BY user_id
), assigned AS MATERIALIZED (
    SELECT e.user_id, e.event_data ->> 'quest_id' AS quest_id,
           max(waymark.try_timestamptz(e.event_data ->> 'due_at')) AS due_at
    FROM public.user_activity_events e
    WHERE e.event_type = 'quest_assigned' AND e.occurred_at <= %(now)s
      AND e.user_id IS NOT NULL
      AND (%(user_ids)s::uuid[] IS NULL OR e.user_id = ANY (%(user_ids)s::uuid[]))
      AND e.event_data ? 'quest_id' AND e.event_data ? 'due_at'
    GROUP BY 1, 2
), completions AS MATERIALIZED (
    -- First completion of each quest, and its best xp (a JSON number only, bounded so a
    -- huge number cannot overflow float8) among completions of the deadline window.
    SELECT e.user_id, e.event_data ->> 'quest_id' AS quest_id,
           min(e.occurred_at) AS done_at,
           max(CASE WHEN jsonb_typeof(e.event_data -> 'xp') = 'number'
                    THEN least(greatest((e.event_data -> 'xp')::numeric, -1e9), 1e9)::float8
               END) FILTER (WHERE e.occurred_at > %(deadlines_since)s) AS xp
    FROM public.user_activity_events e
    WHERE e.event_type = 'quest_completed' AND e.occurred_at <= %(now)s
      AND e.user_id IS NOT NULL
      AND (%(user_ids)s::uuid[] IS NULL OR e.user_id = ANY (%(user_ids)s::uuid[]))
    GROUP BY 1, 2
), deadlines AS (
    SELECT a.user_id, count(*) AS quests_due,
           count(*) FILTER (WHERE c.user_id IS NULL) AS quests_missed,
           count(*) FILTER (WHERE c.done_at > a.due_at) AS quests_late
    FROM assigned a
    LEFT JOIN completions c ON c.user_id = a.user_id AND c.quest_id = a.quest_id
    WHERE a.due_at > %(deadlines_since)s AND a.due_at <= %(now)s
    GROUP BY a.user_id
), scores AS (
    SELECT user_id, count(xp) AS scored_quests, avg(xp) AS mean_xp
    FROM completions WHERE xp IS NOT NULL GROUP BY user_id
)
SELECT s.user_id, s.first_at, s.last_at,
       coalesce(k.active_days, 0) AS active_days,
       coalesce(k.longest_streak, 0) AS longest_streak,
       coalesce(k.current_streak, 0) AS current_streak,
       coalesce(l.login_events, 0) AS login_events,
       coalesce(q.quests_started, 0) AS quests_started,
       coalesce(q.quests_completed, 0) AS quests_completed,
       coalesce(ss.sessions, 0) AS sessions,
       ss.avg_session_minutes,
       coalesce(dl.quests_due, 0) AS quests_due,
       coalesce(dl.quests_missed, 0) AS quests_missed,
       coalesce(dl.quests_late, 0) AS quests_late,
       coalesce(sc.scored_quests, 0) AS scored_quests,
       sc.mean_xp,
       coalesce(r.recent_active_days, 0) AS recent_active_days
FROM students s
LEFT JOIN streaks k ON k.user_id = s.user_id
LEFT JOIN logins l ON l.user_id = s.user_id
LEFT JOIN quests q ON q.user_id = s.user_id
LEFT JOIN session_stats ss ON ss.user_id = s.user_id
LEFT JOIN deadlines dl ON dl.user_id = s.user_id
LEFT JOIN scores sc ON sc.user_id = s.user_id
LEFT JOIN recent r ON r.user_id = s.user_id
"""

#: Raw per-student numbers for every student the connection may see, in one statement.
#: Parameters: now, since (= now − window), deadlines_since (= now − deadline_days),
#: recent_since (= now − trend_days), today (UTC date of now), gap (session gap interval), passive (NON_ACTIVITY_TYPES),
#: user_ids (uuid[] or NULL for everyone).
RISK_INPUTS_SQL = ALL_IDS_CTE + RISK_INPUTS_BODY
#: ``RISK_INPUTS_SQL`` for the students in ``user_ids`` only (same rows, no skip scan).
RISK_INPUTS_GIVEN_SQL = GIVEN_IDS_CTE + RISK_INPUTS_BODY


def score_students(conn: psycopg.Connection[Any], *, now: datetime,
                   params: RiskParams = DEFAULT_PARAMS,
                   user_ids: Sequence[uuid.UUID] | None = None) -> list[RiskAssessment]:
    """Score every student the connection may see (or only ``user_ids``), highest risk first.

    One set-based query for all students; ``now`` is a parameter, never the database
    clock, so the past can be scored (tests, the OULAD replay, back-fills).
    """
    now = _utc(now)
    rows = fetch_inputs(conn, now=now, params=params, user_ids=user_ids)
    return rank([assess(row, now=now, params=params) for row in rows])


def fetch_inputs(conn: psycopg.Connection[Any], *, now: datetime,
                 params: RiskParams = DEFAULT_PARAMS,
                 user_ids: Sequence[uuid.UUID] | None = None) -> list[Row]:
    """The raw numbers behind every visible student's factors (one row per student).

    Only ``window_days``, ``deadline_days``, ``trend_days`` and ``session_gap_minutes``
    reach the SQL;
    weights and the other horizons apply in :func:`assess`, so a calibration can
    re-assess the same rows under many parameter sets.
    """
    now = _utc(now)
    query = RISK_INPUTS_SQL if user_ids is None else RISK_INPUTS_GIVEN_SQL
    return fetch_all(conn, query, {
        "now": now,
        "since": now - timedelta(days=params.window_days),
        "deadlines_since": now - timedelta(days=params.deadline_days),
        "recent_since": now - timedelta(days=params.trend_days),
        "today": now.date(),
        "gap": timedelta(minutes=params.session_gap_minutes),
        "passive": list(NON_ACTIVITY_TYPES),
        "user_ids": list(user_ids) if user_ids is not None else None,
    })


def rank(assessments: list[RiskAssessment]) -> list[RiskAssessment]:
    """Highest risk first; ties in user id order so the answer is stable."""
    return sorted(assessments, key=lambda a: (-a.score, str(a.user_id)))


def assess(row: Row, *, now: datetime, params: RiskParams = DEFAULT_PARAMS) -> RiskAssessment:
    """Turn one student's raw numbers (a row of ``RISK_INPUTS_SQL``) into a scored assessment."""
    now = _utc(now)
    factors = [
        inactivity_factor(row, now, params),
        login_factor(row, now, params),
        quest_factor(row, params),
        session_factor(row, params),
        streak_factor(row, params),
        deadline_factor(row, params),
        late_factor(row, params),
        score_factor(row, params),
        trend_factor(row, now, params),
    ]
    score = round(min(1.0, max(0.0, sum(f.contribution for f in factors))), 6)
    return RiskAssessment(user_id=row["user_id"], score=score, level=level_for(score),
                          factors=[f for f in factors if f.weight > 0], computed_at=now)


def _utc(now: datetime) -> datetime:
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
                  {"quests_started": started, "quests_completed": completed})


def session_factor(row: Row, params: RiskParams) -> Factor:
    """How far the mean session falls short of the target length (no session: 1)."""
    sessions = int(row["sessions"])
    minutes = float(row["avg_session_minutes"] or 0.0)
    value = 1.0 - minutes / params.session_target_minutes if sessions else 1.0
    return Factor("short_sessions", _clamp(value), params.session_weight,
                  {"sessions": sessions, "avg_session_minutes": round(minutes, 2),
                   "target_minutes": params.session_target_minutes})


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
    the calibrated preset). Otherwise nothing scored → 0, not 1: work not handed in is already ``missed_deadlines``, and a
    host app whose quests carry no ``xp`` must not make everyone look at risk.
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
