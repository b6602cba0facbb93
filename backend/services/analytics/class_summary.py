"""Classes: the list a caller may read, and one class's summary for its teacher or an admin.

A summary covers the window ``(now − days, now]`` for the class's students: engagement per
day, events by category, the risk distribution of their latest stored assessments, quest
completion, the students at risk with their factors, which parameter set made those
scores, and the class's popular quests.

Small-cell suppression (docs/access.md, "Small groups"): shown to anyone but an admin, an
aggregate that describes fewer than ``min_group_size`` distinct students is replaced by
:data:`SUPPRESSED` (a day's row keeps its date and says ``"suppressed": true``). Zero is
never suppressed: it describes nobody. Lists of individual students are not aggregates;
the teacher may see each of those students anyway (RLS).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from backend.db import fetch_all, fetch_one
from backend.services.analytics import QUERIES, risk
from backend.services.analytics.quests import quest_figures
from backend.services.analytics.risk import parameter_sets
from backend.services.analytics.window import ACTIVITY_PARAMS, Window, capped_ratio, window


@dataclass(frozen=True)
class Disclosure:
    """Who is looking, as far as suppression goes: admins see every cell."""

    min_group_size: int
    unsuppressed: bool = False

    def hides(self, students: int) -> bool:
        """Whether an aggregate over this many distinct students must be hidden."""
        return not self.unsuppressed and 0 < students < self.min_group_size

    def marker(self) -> dict[str, Any]:
        """What a hidden aggregate is replaced by: a reason in words, never the number."""
        return {"suppressed": True,
                "reason": f"fewer than {self.min_group_size} students"}


def class_list(conn: psycopg.Connection[Any], *, with_counts: bool) -> dict[str, Any]:
    """The classes the caller may read; member counts only for those who see the members."""
    rows = fetch_all(conn, QUERIES["classes"], {})
    return {"classes": [{
        "class_id": str(row["class_id"]), "name": row["name"],
        "created_at": row["created_at"].isoformat(),
        "student_count": int(row["student_count"]) if with_counts else None,
        "teacher_count": int(row["teacher_count"]) if with_counts else None,
    } for row in rows]}


def teaches(conn: psycopg.Connection[Any], class_id: uuid.UUID) -> bool:
    """Whether the caller teaches this class (the policies' own helper decides)."""
    row = fetch_one(conn, QUERIES["teaches_class"], {"class_id": class_id})
    return bool(row and row["teaches"])


def class_summary(conn: psycopg.Connection[Any], class_id: uuid.UUID, *, now: datetime,
                  days: int, disclosure: Disclosure, threshold: float = 0.7
                  ) -> dict[str, Any] | None:
    """The summary of one class, or None when the caller cannot read the class."""
    klass = fetch_one(conn, QUERIES["class_roster"], {"class_id": class_id})
    if klass is None:
        return None
    students = list(klass["students"])
    span = window(now, days)
    params = {"students": students, **span.params(), **ACTIVITY_PARAMS}
    hidden = disclosure.hides(len(students))
    assessments = fetch_all(conn, QUERIES["class_assessments"], {"students": students,
                                                                  "now": now})
    return {
        "class": {"class_id": str(klass["class_id"]), "name": klass["name"],
                  "student_count": len(students)},
        **span.describe(),
        "min_group_size": disclosure.min_group_size,
        "suppressed": hidden,
        "daily": _daily(conn, params, span, disclosure, hidden),
        "events_by_category": _categories(conn, params, disclosure, hidden),
        "risk_distribution": _distribution(assessments, disclosure, hidden),
        "quest_completion": _quest_completion(conn, params, disclosure, hidden),
        "at_risk": [_flagged(row) for row in assessments
                    if row["risk_score"] is not None and row["risk_score"] >= threshold],
        "threshold": threshold,
        "parameter_set": parameter_sets.label_of_scores(
            conn, [row["params"] for row in assessments if row["params"] is not None]),
        "popular_quests": _quests(conn, params, disclosure, hidden),
    }


def _daily(conn: psycopg.Connection[Any], params: dict[str, Any], span: Window,
           disclosure: Disclosure, hidden: bool) -> list[dict[str, Any]]:
    by_day = {row["day"]: row for row in fetch_all(conn, QUERIES["class_daily"], params)}
    out: list[dict[str, Any]] = []
    for day in _days(span):
        row = by_day.get(day)
        active = int(row["active_students"]) if row else 0
        events = int(row["events"]) if row else 0
        if hidden or disclosure.hides(active):
            out.append({"day": day.isoformat(), "active_students": None, "events": None,
                        "suppressed": True})
        else:
            out.append({"day": day.isoformat(), "active_students": active, "events": events,
                        "suppressed": False})
    return out


def _days(span: Window) -> list[date]:
    first = (span.since + timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((span.today - first).days + 1)]


def _categories(conn: psycopg.Connection[Any], params: dict[str, Any],
                disclosure: Disclosure, hidden: bool) -> list[dict[str, Any]] | dict[str, Any]:
    rows = fetch_all(conn, QUERIES["class_categories"], params)
    everyone = next((r for r in rows if r["category"] is None), None)
    if hidden or (everyone is not None and disclosure.hides(int(everyone["students"]))):
        return disclosure.marker()
    return [{"category": r["category"], "events": None if disclosure.hides(int(r["students"]))
             else int(r["events"]), "suppressed": disclosure.hides(int(r["students"]))}
            for r in rows if r["category"] is not None]


def _distribution(assessments: list[dict[str, Any]], disclosure: Disclosure,
                  hidden: bool) -> dict[str, Any]:
    scored = [row for row in assessments if row["risk_score"] is not None]
    if hidden or disclosure.hides(len(scored)):
        return disclosure.marker()
    counts = dict.fromkeys(risk.RISK_LEVELS, 0)
    for row in scored:
        counts[risk.risk_level_for(float(row["risk_score"]))] += 1
    return {**counts, "unscored": len(assessments) - len(scored)}


def _quest_completion(conn: psycopg.Connection[Any], params: dict[str, Any],
                      disclosure: Disclosure, hidden: bool) -> dict[str, Any]:
    row = fetch_one(conn, QUERIES["class_quest_students"], params) or {}
    started, completed = int(row.get("started") or 0), int(row.get("completed") or 0)
    if hidden or disclosure.hides(started) or disclosure.hides(completed):
        return disclosure.marker()
    return {"students_started": started, "students_completed": completed,
            "completion_rate": capped_ratio(completed, started)}


def _quests(conn: psycopg.Connection[Any], params: dict[str, Any], disclosure: Disclosure,
            hidden: bool) -> list[dict[str, Any]] | dict[str, Any]:
    if hidden:
        return disclosure.marker()
    quests = []
    for row in fetch_all(conn, QUERIES["class_quests"], params):
        if disclosure.hides(int(row["students"])):
            continue  # a quest only a few students touched would single them out
        quests.append({**quest_figures(row["quest_id"], row), "students": int(row["students"])})
    quests.sort(key=lambda q: (-q["popularity"], q["quest_id"]))
    return quests[:10]


def _flagged(row: dict[str, Any]) -> dict[str, Any]:
    score = round(float(row["risk_score"]), 4)
    return {"user_id": str(row["user_id"]), "risk_score": score,
            "risk_level": risk.risk_level_for(score),
            "engagement_level": row["engagement_level"],
            "assessed_at": row["assessed_at"].isoformat(),
            "factors": risk.with_explanations(row["factors"] or [])}
