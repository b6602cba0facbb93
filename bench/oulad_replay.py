"""Replay an OULAD-format directory into a Waymark database as ordinary Waymark events.

The mapping (documented in bench/README.md, "Risk score on OULAD"):

* every registration (module, presentation, student) is one Waymark user whose uuid is
  derived from those three ids (``uuid5``), so a student in two modules is two users;
* course day 0 of every presentation is the same calendar moment, ``COURSE_DAY_0``;
  course day ``d`` is ``COURSE_DAY_0 + d days`` (negative days come before);
* an active day → a ``login_success`` at 09:00 and a ``page_view`` at 09:00:01 whose
  ``event_data`` carries ``clicks`` and ``activity_types`` and whose ``duration_ms`` is
  one minute per click (capped at 12 hours), so the day is one session of ~clicks minutes;
* each assessment of the presentation → a ``quest_assigned`` on the registration day
  (day 0 when unknown) with ``quest_id`` and ``due_at`` = the end of the due day (an
  exam without a due date is due on the last day of the presentation);
* a submission → a ``quest_completed`` at 09:00:03 of the submission day (``pillar`` =
  module, ``xp`` = score 0–100; no ``xp`` when the score is unknown); the quest counts as ``quest_started`` on the student's first
  active day within the 14 days before its due date (a student working towards it).

Rows go in with one COPY, sorted by time, straight into ``user_activity_events`` —
the same table the writer fills, without the request path.
"""

from __future__ import annotations

import csv
import gzip
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import psycopg

COURSE_DAY_0 = datetime(2013, 1, 7, tzinfo=UTC)
USER_NAMESPACE = uuid.UUID("6f1d1a52-5b1e-4c7a-9a0f-0a0d5e3b7a11")
SECONDS_PER_CLICK = 60
MAX_SESSION_MS = 12 * 3600 * 1000
START_LEAD_DAYS = 14
#: The history a deployment running OULAD's courses keeps (``WAYMARK_ANONYMIZE_AFTER_DAYS``):
#: students register up to 205 days before a presentation starts, when their assessments
#: are assigned, and a presentation lasts up to 270 days, so the default 90 days would
#: forget the deadlines the score judges and everyone who registered early and never came.
#: Every OULAD bench scores and calibrates with it, as ``waymark score`` would there.
HISTORY_DAYS = 365

COPY_SQL = (
    "COPY public.user_activity_events (user_id, occurred_at, event_type, event_category,"
    " page_path, duration_ms, source, event_data) FROM STDIN"
)

Key = tuple[str, str, str]  # (code_module, code_presentation, id_student)


@dataclass(frozen=True)
class Registration:
    """One student in one module presentation, with its outcome."""

    key: Key
    user_id: uuid.UUID
    final_result: str
    registered: float | None
    unregistered: float | None
    length: int

    @property
    def withdrew(self) -> bool:
        """Whether the registration ended in withdrawal (the dropout we predict)."""
        return self.final_result == "Withdrawn"

    def registered_on(self, day: float) -> bool:
        """Whether the student was registered on course day ``day`` (not yet withdrawn)."""
        joined = self.registered is None or self.registered <= day
        return joined and (self.unregistered is None or self.unregistered >= day)


@dataclass(frozen=True)
class Assessment:
    """An assessment of a presentation: a quest with a due day."""

    id: str
    kind: str
    due: float


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay wrote and how long it took."""

    registrations: int
    events: int
    seconds: float


def user_id_for(key: Key) -> uuid.UUID:
    """The Waymark user of a registration: stable across runs, no OULAD id in clear."""
    return uuid.uuid5(USER_NAMESPACE, "oulad:" + ":".join(key))


def course_time(day: float, seconds: int = 0, day0: datetime = COURSE_DAY_0) -> datetime:
    """The calendar moment of a course day (plus seconds into that day)."""
    return day0 + timedelta(days=day, seconds=seconds)


def _number(text: str) -> float | None:
    return float(text) if text not in ("", "NA") else None


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", newline="")
    return path.open(newline="")


def _rows(data_dir: Path, name: str) -> Iterator[dict[str, str]]:
    path = data_dir / name
    if not path.exists():
        path = data_dir / name.removesuffix(".gz")
    with _open(path) as handle:
        yield from csv.DictReader(handle)


def load_registrations(data_dir: Path) -> dict[Key, Registration]:
    """Every registration of ``students.csv`` by (module, presentation, student)."""
    found: dict[Key, Registration] = {}
    for row in _rows(data_dir, "students.csv"):
        key = (row["code_module"], row["code_presentation"], row["id_student"])
        found[key] = Registration(
            key=key, user_id=user_id_for(key), final_result=row["final_result"],
            registered=_number(row["date_registration"]),
            unregistered=_number(row["date_unregistration"]),
            length=int(float(row["module_presentation_length"])))
    return found


def load_activity(data_dir: Path) -> dict[Key, list[tuple[int, int, int]]]:
    """Active days per registration: (day, clicks, activity types), in day order."""
    days: dict[Key, list[tuple[int, int, int]]] = defaultdict(list)
    for row in _rows(data_dir, "daily_activity.csv.gz"):
        key = (row["code_module"], row["code_presentation"], row["id_student"])
        days[key].append((int(float(row["date"])), int(float(row["clicks"])),
                          int(float(row["activity_types"] or 0))))
    for value in days.values():
        value.sort()
    return days


def load_submissions(data_dir: Path, registrations: dict[Key, Registration],
                     ) -> tuple[dict[tuple[str, str], list[Assessment]],
                                dict[Key, list[tuple[str, float, float | None]]]]:
    """The assessment schedule of each presentation, and each registration's submissions.

    Only submissions are in the data, so a presentation's schedule is the union of the
    assessments anyone submitted; a missing due date means the presentation's last day.
    """
    lengths = {r.key[:2]: r.length for r in registrations.values()}
    schedule: dict[tuple[str, str], dict[str, Assessment]] = defaultdict(dict)
    submitted: dict[Key, list[tuple[str, float, float | None]]] = defaultdict(list)
    for row in _rows(data_dir, "assessments.csv.gz"):
        course = (row["code_module"], row["code_presentation"])
        due = _number(row["date_due"])
        if due is None:
            due = float(lengths.get(course, 0))
        schedule[course].setdefault(row["id_assessment"],
                                    Assessment(row["id_assessment"], row["assessment_type"], due))
        day = _number(row["date_submitted"])
        if day is not None:
            submitted[(*course, row["id_student"])].append(
                (row["id_assessment"], day, _number(row["score"])))
    ordered = {course: sorted(items.values(), key=lambda a: (a.due, a.id))
               for course, items in schedule.items()}
    return ordered, submitted


def _line(user: uuid.UUID, at: datetime, event_type: str, category: str, path: str | None,
          duration_ms: int | None, data: dict[str, object]) -> str:
    payload = json.dumps(data, separators=(",", ":")).replace("\\", "\\\\")
    return "\t".join((str(user), at.isoformat(), event_type, category, path or "\\N",
                      "\\N" if duration_ms is None else str(duration_ms), "server", payload))


def events_for(reg: Registration, schedule: list[Assessment],
               active: list[tuple[int, int, int]],
               submissions: list[tuple[str, float, float | None]],
               day0: datetime = COURSE_DAY_0, outcomes: bool = False,
               ) -> Iterator[tuple[float, str]]:
    """The Waymark events of one registration as (epoch seconds, COPY line).

    ``day0``: the calendar moment of its presentation's course day 0. ``outcomes``: also
    the events a host app would send when a registration ends — ``course_withdrawn`` on
    the unregistration day of a withdrawal (the 3 without a date get none), and
    ``course_completed`` for the others, on the presentation's last day (or their
    unregistration day, if earlier) — which ``waymark risk-calibrate`` reads.
    """
    def course_time(day: float, seconds: int = 0) -> datetime:
        return day0 + timedelta(days=day, seconds=seconds)

    module = reg.key[0]
    path = f"/course/{module.lower()}"
    assigned_day = reg.registered if reg.registered is not None else 0.0
    for item in schedule:
        at = course_time(assigned_day, 8 * 3600)
        due_at = course_time(item.due + 1)
        yield at.timestamp(), _line(reg.user_id, at, "quest_assigned", "custom", path, None, {
            "quest_id": f"oulad-{item.id}", "quest_title": f"{item.kind} {item.id}",
            "due_at": due_at.isoformat()})
    for day, clicks, kinds in active:
        login = course_time(day, 9 * 3600)
        yield login.timestamp(), _line(reg.user_id, login, "login_success", "auth", path,
                                       None, {})
        view = login + timedelta(seconds=1)
        duration = min(clicks * SECONDS_PER_CLICK * 1000, MAX_SESSION_MS)
        yield view.timestamp(), _line(reg.user_id, view, "page_view", "navigation", path,
                                      duration, {"clicks": clicks, "activity_types": kinds})
    yield from _quest_events(reg, schedule, [day for day, _, _ in active], submissions, path,
                             day0)
    if outcomes:
        ended = reg.unregistered
        if reg.withdrew and ended is not None:
            at = course_time(ended, 18 * 3600)
            yield at.timestamp(), _line(reg.user_id, at, "course_withdrawn", "custom", path,
                                        None, {"module": module})
        elif not reg.withdrew:
            at = course_time(min(ended, reg.length) if ended is not None else reg.length,
                             18 * 3600)
            yield at.timestamp(), _line(reg.user_id, at, "course_completed", "custom", path,
                                        None, {"module": module})


def _quest_events(reg: Registration, schedule: list[Assessment], active_days: list[int],
                  submissions: list[tuple[str, float, float | None]], path: str,
                  day0: datetime = COURSE_DAY_0) -> Iterator[tuple[float, str]]:
    def course_time(day: float, seconds: int = 0) -> datetime:
        return day0 + timedelta(days=day, seconds=seconds)

    due_of = {a.id: a for a in schedule}
    for item in schedule:
        started = next((d for d in active_days if item.due - START_LEAD_DAYS <= d <= item.due),
                       None)
        if started is not None:
            at = course_time(started, 9 * 3600 + 2)
            yield at.timestamp(), _line(reg.user_id, at, "quest_started", "quest", path, None,
                                        {"quest_id": f"oulad-{item.id}",
                                         "quest_title": f"{item.kind} {item.id}"})
    for assessment_id, day, score in submissions:
        known = due_of.get(assessment_id)
        kind = known.kind if known else "assessment"
        at = course_time(day, 9 * 3600 + 3)
        data: dict[str, object] = {"quest_id": f"oulad-{assessment_id}",
                                   "quest_title": f"{kind} {assessment_id}", "pillar": reg.key[0]}
        if score is not None:  # an unknown score is not a score of 0
            data["xp"] = int(score)
        yield at.timestamp(), _line(reg.user_id, at, "quest_completed", "quest", path, None,
                                    data)


def build_events(data_dir: Path, starts: Mapping[str, datetime] | None = None,
                 outcomes: bool = False) -> tuple[dict[Key, Registration], list[str]]:
    """All registrations and their events as COPY lines, sorted by time.

    ``starts``: course day 0 per presentation code (e.g. ``{"2013J": …}``); a presentation
    not named starts at ``COURSE_DAY_0``. ``outcomes``: see :func:`events_for`.
    """
    registrations = load_registrations(data_dir)
    activity = load_activity(data_dir)
    schedule, submitted = load_submissions(data_dir, registrations)
    stamped: list[tuple[float, str]] = []
    for key, reg in registrations.items():
        day0 = (starts or {}).get(key[1], COURSE_DAY_0)
        stamped.extend(events_for(reg, schedule.get(key[:2], []), activity.get(key, []),
                                  submitted.get(key, []), day0, outcomes))
    stamped.sort(key=lambda item: item[0])
    return registrations, [line for _, line in stamped]


def _classes(conn: psycopg.Connection[Any], registrations: dict[Key, Registration]) -> None:
    """A class per module presentation, holding its registrations as students."""
    courses: dict[tuple[str, str], list[uuid.UUID]] = defaultdict(list)
    for key, reg in registrations.items():
        courses[key[:2]].append(reg.user_id)
    for (module, presentation), users in sorted(courses.items()):
        row = conn.execute("INSERT INTO public.classes (name) VALUES (%s) RETURNING class_id",
                           (f"{module} {presentation}",)).fetchone()
        assert row is not None
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO public.class_memberships (class_id, user_id, "
                            "member_role) VALUES (%s, %s, 'student')",
                            [(row[0], user) for user in users])


def copy_lines(conn: psycopg.Connection[Any], lines: Iterable[str],
               chunk: int = 20_000) -> int:
    """COPY prepared lines into user_activity_events; returns how many were written."""
    written = 0
    buffer: list[str] = []
    with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
        for line in lines:
            buffer.append(line)
            if len(buffer) >= chunk:
                copy.write("\n".join(buffer) + "\n")
                written += len(buffer)
                buffer.clear()
        if buffer:
            copy.write("\n".join(buffer) + "\n")
            written += len(buffer)
    return written


def replay(url: str, data_dir: Path, *, starts: Mapping[str, datetime] | None = None,
           outcomes: bool = False, classes: bool = False,
           ) -> tuple[dict[Key, Registration], ReplaySummary]:
    """Load a whole OULAD-format directory into the (migrated) database at ``url``.

    ``starts`` and ``outcomes``: see :func:`build_events`. ``classes``: one class per module
    presentation (``AAA 2013J``…) with its students, the cohorts of the cohort-relative
    factors.
    """
    started = time.perf_counter()
    registrations, lines = build_events(data_dir, starts, outcomes)
    with psycopg.connect(url, prepare_threshold=None) as conn:
        conn.execute("SET synchronous_commit = off")
        written = copy_lines(conn, lines)
        if classes:
            _classes(conn, registrations)
        conn.commit()
        conn.execute("ANALYZE public.user_activity_events")
        conn.commit()
    return registrations, ReplaySummary(len(registrations), written,
                                        time.perf_counter() - started)
