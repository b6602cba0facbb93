"""Deterministic, realistic demo data: students, parents, quests, badges, tutor, errors.

One generator serves two users: ``waymark demo`` (a few hundred students over 90 days,
so a newcomer's dashboard shows real answers) and ``bench/generate.py`` (millions of
demo-like events for benchmarks). The same ``seed`` and ``now`` give the same rows.

Students follow one of four personas: ``regular`` (active most days), ``casual``
(a few days a week), ``drifting`` (active at first, fading, then gone 5–40 days before
``now`` — the ones the risk score should flag) and ``new`` (joined in the last week).
Events are written with COPY into ``user_activity_events``; error events are also
written to ``error_events`` with their ``error_groups``, and parents get
``guardian_links`` rows. Sessions, rollups, scores and milestones are derived later.

With ``coursework`` (what ``waymark demo`` asks for) each class also gets a quest a week
with a deadline, handed in on time, late or not at all by persona, and most drifting
students formally withdraw (``course_withdrawn``) one to three weeks after their last day —
so the deadline factors have something to read and ``waymark risk-calibrate`` and
``waymark risk-backtest`` have outcomes to fit and check on. It uses its own random
stream: the sessions are the same with it or without it.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from backend.queries import Queries
from backend.services.ingest.copy_payload import EVENT_COLUMNS  # the rows' order: the writer's
from backend.taxonomy import category_of

#: the generator's statements, by name (demo_data.sql beside this file)
QUERIES = Queries.load("backend.scripts", "demo_data.sql")

PILLARS = ("stem", "arts", "wellbeing", "community", "life_skills")
QUESTS: tuple[tuple[str, str, str, int], ...] = tuple(
    (f"q{n:02d}", f"Quest {n:02d}: {title}", PILLARS[n % len(PILLARS)], 50 + 25 * (n % 4))
    for n, title in enumerate((
        "Build a rain gauge", "Sketch your street", "Morning routine", "Help a neighbour",
        "Budget a week", "Code a quiz", "Write a haiku", "Mindful minute", "Clean-up crew",
        "Cook a meal", "Measure the moon", "Paint a mural", "Sleep diary", "Interview an elder",
        "Fix a bike", "Map your town", "Compose a jingle", "Walk 10k steps", "Start a club",
        "Plan a trip", "Solar oven", "Photo story", "Gratitude log", "Library visit",
        "Grow a plant", "Circuit basics", "Short film", "Stretch routine", "Pen pal",
        "Open an account",
    ), start=1)
)
BADGES = tuple(f"b{n:02d}" for n in range(1, 16))
OTHER_PAGES = ("/", "/dashboard", "/quests", "/badges", "/tutor", "/community", "/profile",
               "/settings", "/leaderboard")
#: (utm_source, utm_medium, utm_campaign) of landing visits; None: direct traffic.
CAMPAIGNS = (("instagram", "social", "spring_launch"), ("google", "cpc", "back_to_school"),
             ("newsletter", "email", "newsletter_03"), ("partner", "referral", "teacher_referral"),
             (None, None, None))
STOREFRONTS = ("app_store", "play_store", "web")
DEVICES = (("Chrome", "Windows", "desktop"), ("Safari", "iOS", "mobile"),
           ("Chrome", "Android", "mobile"), ("Safari", "Mac OS X", "desktop"),
           ("Firefox", "Linux", "desktop"), ("Safari", "iOS", "tablet"))
ERROR_GROUPS = (
    ("javascript_error", "TypeError: cannot read properties of undefined (reading 'xp')",
     "QuestCard", None),
    ("javascript_error", "ChunkLoadError: loading chunk 7 failed", "App", None),
    ("javascript_error", "ResizeObserver loop limit exceeded", "TutorPanel", None),
    ("api_error", "500 Internal Server Error", None, "/api/quests/complete"),
    ("api_error", "502 Bad Gateway", None, "/api/tutor/message"),
    ("api_error", "422 Unprocessable Entity", None, "/api/evidence"),
    ("network_error", "Failed to fetch", None, "/api/badges"),
    ("network_error", "NetworkError when attempting to fetch resource", None, "/api/community"),
)
PERSONAS = (("regular", 0.45), ("casual", 0.30), ("drifting", 0.17), ("new", 0.08))

#: Coursework: every class is assigned a quest each ASSIGN_EVERY_DAYS, due DUE_AFTER_DAYS
#: later; by persona, the chance a student hands it in on time, late (after the deadline),
#: and the share of the quest's xp they earn (a range).
ASSIGN_EVERY_DAYS = 7
DUE_AFTER_DAYS = 7
ON_TIME = {"regular": 0.85, "casual": 0.55, "drifting": 0.6, "new": 0.8}
LATE = {"regular": 0.05, "casual": 0.15, "drifting": 0.15, "new": 0.05}
XP_SHARE = {"regular": (0.75, 1.0), "casual": (0.5, 0.9), "drifting": (0.4, 0.8),
            "new": (0.6, 1.0)}
#: Not every student who fades away files a withdrawal (as in OULAD, where many stay
#: registered and fail): this share of drifting students does, WITHDRAW_AFTER_DAYS after
#: their last activity.
WITHDRAW_SHARE = 0.7
WITHDRAW_AFTER_DAYS = (7, 21)

ERROR_COLUMNS = ("error_id", "occurred_at", "user_id", "session_id", "error_type", "message",
                 "component_name", "page_path", "api_endpoint", "status_code", "browser", "os",
                 "device_type", "fingerprint", "group_id")

EventRow = tuple[Any, ...]
#: where a row (in COPY column order) keeps these
OCCURRED_AT, EVENT_TYPE = EVENT_COLUMNS.index("occurred_at"), EVENT_COLUMNS.index("event_type")


@dataclass(frozen=True)
class Person:
    """One demo user: who they are and when they are active (days before ``now``)."""

    user_id: uuid.UUID
    persona: str
    first_day: int  # days before now of the first activity (larger = earlier)
    last_day: int  # days before now of the last activity (0 = today)
    weight: float
    device: tuple[str, str, str]


@dataclass
class DemoSummary:
    """What a load wrote, and ids a person can mint tokens for to look around."""

    events: int = 0
    errors: int = 0
    students: int = 0
    parents: int = 0
    guardian_links: int = 0
    admin_ids: list[str] = field(default_factory=list)
    sample_student_ids: list[str] = field(default_factory=list)
    sample_parent_ids: list[str] = field(default_factory=list)
    classes: int = 0
    sample_teacher_ids: list[str] = field(default_factory=list)
    personas: dict[str, int] = field(default_factory=dict)
    #: with ``coursework``: quests assigned (one per student and week), and withdrawals
    assignments: int = 0
    withdrawals: int = 0


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _persona(rng: random.Random) -> str:
    roll = rng.random()
    for name, share in PERSONAS:
        roll -= share
        if roll < 0:
            return name
    return PERSONAS[-1][0]


def build_students(rng: random.Random, count: int, days: int) -> list[Person]:
    """The student population with personas spread over the ``days`` window."""
    people = []
    for _ in range(count):
        persona = _persona(rng)
        if persona == "new":
            first, last = rng.randint(0, min(6, days - 1)), 0
        elif persona == "drifting":
            first = rng.randint(max(days // 2, 1), days - 1)
            last = rng.randint(min(5, first), min(40, first))
        else:
            first, last = rng.randint(max(days - 10, 0), days - 1), rng.randint(0, 1)
        weight = {"regular": 3.0, "casual": 1.0, "drifting": 1.5, "new": 1.5}[persona]
        people.append(Person(_uuid(rng), persona, first, last, weight * rng.uniform(0.5, 1.5),
                             rng.choice(DEVICES)))
    return people


def build_parents(rng: random.Random, students: list[Person]) -> list[tuple[Person, list[Person]]]:
    """About one parent per three students, each linked to one or two of them."""
    families = []
    for i in range(0, len(students) - 1, 3):
        parent = Person(_uuid(rng), "parent", 60, 0, 0.3, rng.choice(DEVICES))
        children = [students[i]] + ([students[i + 1]] if rng.random() < 0.3 else [])
        families.append((parent, children))
    return families


#: Class names for the demo school; a class holds about CLASS_SIZE students.
CLASS_NAMES = ("Year 7 Maths", "Year 7 Science", "Year 8 English", "Year 8 History",
               "Year 9 Computing", "Year 9 Art", "Year 10 Biology", "Year 10 Geography")
CLASS_SIZE = 24
#: A club of 4 students: fewer than the default minimum group size, so its teacher sees
#: its aggregates suppressed (docs/access.md, "Small groups").
CLUB = ("Robotics club", 4)


@dataclass
class DemoClass:
    """One class of the demo school: its teacher and students."""

    class_id: uuid.UUID
    name: str
    teacher_id: uuid.UUID
    students: list[uuid.UUID]


def build_classes(rng: random.Random, students: list[Person]) -> list[DemoClass]:
    """Consecutive groups of about CLASS_SIZE students, one teacher each, and a small club
    taught by the first class's teacher (so one teacher has two classes)."""
    classes: list[DemoClass] = []
    for n, start in enumerate(range(0, len(students), CLASS_SIZE)):
        name = CLASS_NAMES[n % len(CLASS_NAMES)] + ("" if n < len(CLASS_NAMES)
                                                      else f" ({n // len(CLASS_NAMES) + 1})")
        members = [p.user_id for p in students[start:start + CLASS_SIZE]]
        classes.append(DemoClass(_uuid(rng), name, _uuid(rng), members))
    if classes and len(students) >= CLUB[1]:
        club = rng.sample([p.user_id for p in students], CLUB[1])
        classes.append(DemoClass(_uuid(rng), CLUB[0], classes[0].teacher_id, club))
    return classes


def _hash16(*parts: str) -> bytes:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).digest()


class EventFactory:
    """Turns sessions into rows; owns the RNG so the output is deterministic."""

    def __init__(self, rng: random.Random, now: datetime, days: int) -> None:
        self.rng = rng
        self.now = now
        self.days = days
        self.midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        self.errors: list[tuple[Any, ...]] = []

    def _when(self, day_offset: int) -> datetime:
        """A session start on the day ``day_offset`` days before now, never in the future."""
        start = self.midnight - timedelta(days=day_offset)
        hour = min(23.9, max(0.0, self.rng.gauss(16.5, 3.5)))
        when = start + timedelta(seconds=hour * 3600)
        latest = self.now - timedelta(hours=1)  # room for the session to finish before now
        if when > latest:
            when = start + max(latest - start, timedelta(0)) * self.rng.random()
        return when

    def _day_for(self, person: Person) -> int:
        span = person.first_day - person.last_day
        if person.persona == "drifting":  # more activity early, fading towards the end
            return person.first_day - int(span * (1 - math.sqrt(1 - self.rng.random())))
        return person.last_day + int(self.rng.random() * (span + 1))

    def row(self, at: datetime, event_type: str, *, user: uuid.UUID | None,
            visitor: bytes | None, session: uuid.UUID | None, device: tuple[str, str, str],
            page: str | None = None, title: str | None = None, data: dict[str, Any] | None = None,
            duration: int | None = None, load: int | None = None, status: int | None = None,
            network: bytes | None = None, referrer: str | None = None,
            utm: tuple[str | None, str | None, str | None] = (None, None, None),
            source: str = "client") -> EventRow:
        """One user_activity_events row in COPY column order."""
        at = min(at, self.now)
        return (str(_uuid(self.rng)), at.isoformat(),
                (at + timedelta(milliseconds=self.rng.randint(20, 900))).isoformat(),
                str(user) if user else None, visitor, network, str(session) if session else None,
                event_type, category_of(event_type), page, title, referrer, utm[0], utm[1],
                utm[2], duration, load, status, source, json.dumps(data or {}), device[0],
                device[1], device[2])

    def student_session(self, person: Person) -> list[EventRow]:
        """One session of a student: maybe a login, pages, quests, badges, tutor, errors."""
        rng = self.rng
        day = self._day_for(person)
        at = self._when(day)
        session = _uuid(rng)
        visitor = _hash16("user", str(person.user_id), str(day))
        kw: dict[str, Any] = {"user": person.user_id, "visitor": visitor, "session": session,
                              "device": person.device}
        rows: list[EventRow] = []
        if rng.random() < 0.5:
            if rng.random() < 0.05:
                rows.append(self.row(at, "login_failed", **kw))
                at += timedelta(seconds=rng.randint(5, 40))
            rows.append(self.row(at, "login_success", **kw))
        pages = 1 if rng.random() < 0.2 else rng.randint(2, 8)
        for _ in range(pages):
            at = self._page(rows, at, person, kw)
        if rng.random() < 0.02:
            self._error(rows, at, person, kw)
        if rng.random() < 0.1:
            rows.append(self.row(at + timedelta(seconds=2), "logout", **kw))
        return rows

    def _page(self, rows: list[EventRow], at: datetime, person: Person,
              kw: dict[str, Any]) -> datetime:
        rng = self.rng
        quest = rng.choice(QUESTS) if rng.random() < 0.4 else None
        page = f"/quests/{quest[0]}" if quest else rng.choice(OTHER_PAGES)
        load = int(rng.lognormvariate(6.2, 0.5))
        rows.append(self.row(at, "page_view", page=page, load=load, **kw))
        stay = int(rng.lognormvariate(10.3, 0.9))  # ~30 s median on a page, in ms
        if quest:
            self._quest(rows, at, quest, page, kw)
        elif page == "/tutor" and rng.random() < 0.7:
            rows.append(self.row(at + timedelta(seconds=3), "tutor_opened", page=page, **kw))
            for n in range(rng.randint(1, 4)):
                rows.append(self.row(at + timedelta(seconds=10 + 20 * n), "tutor_message_sent",
                                     page=page, data={"length": rng.randint(5, 300)}, **kw))
        elif page == "/community" and rng.random() < 0.5:
            kind = rng.choice(("profile_viewed", "connection_request_sent", "connection_accepted"))
            rows.append(self.row(at + timedelta(seconds=5), kind, page=page, **kw))
        elif page == "/badges" and rng.random() < 0.5:
            rows.append(self.row(at + timedelta(seconds=4), "badge_viewed", page=page,
                                 data={"badge_id": rng.choice(BADGES)}, **kw))
        end = at + timedelta(milliseconds=stay)
        if rng.random() < 0.8:
            rows.append(self.row(end, "page_exit", page=page, duration=stay, **kw))
        return end + timedelta(seconds=rng.randint(1, 5))

    def _quest(self, rows: list[EventRow], at: datetime, quest: tuple[str, str, str, int],
               page: str, kw: dict[str, Any]) -> None:
        rng = self.rng
        qid, title, pillar, xp = quest
        data = {"quest_id": qid, "quest_title": title}
        rows.append(self.row(at + timedelta(seconds=1), "quest_viewed", page=page, data=data, **kw))
        if rng.random() < 0.45:
            rows.append(self.row(at + timedelta(seconds=3), "quest_started", page=page, data=data,
                                 **kw))
            roll = rng.random()
            if roll < 0.55:
                rows.append(self.row(at + timedelta(seconds=8), "task_completed", page=page,
                                     data=data, **kw))
                rows.append(self.row(at + timedelta(seconds=12), "quest_completed", page=page,
                                     data={**data, "pillar": pillar, "xp": xp}, **kw))
                if rng.random() < 0.25:
                    rows.append(self.row(at + timedelta(seconds=13), "badge_earned", page=page,
                                         data={"badge_id": rng.choice(BADGES)}, **kw))
            elif roll < 0.7:
                rows.append(self.row(at + timedelta(seconds=9), "quest_abandoned", page=page,
                                     data=data, **kw))

    def _error(self, rows: list[EventRow], at: datetime, person: Person,
               kw: dict[str, Any]) -> None:
        group = self.rng.randrange(len(ERROR_GROUPS))
        error_type, message, component, endpoint = ERROR_GROUPS[group]
        status = int(message[:3]) if error_type == "api_error" else None
        page = self.rng.choice(OTHER_PAGES)
        rows.append(self.row(at, error_type, page=page, status=status,
                             data={"message": message, "group": group}, **kw))
        self.errors.append((str(_uuid(self.rng)), at.isoformat(), str(person.user_id),
                            str(kw["session"]), error_type, message, component, page, endpoint,
                            status, *person.device, f"demo-{group}", group))

    def withdrawal(self, person: Person) -> EventRow | None:
        """Most drifting students' ``course_withdrawn``, some days after their last activity
        (the host app records it; None when it has not happened by now)."""
        if person.persona != "drifting" or self.rng.random() >= WITHDRAW_SHARE:
            return None
        at = self._last_day_ends(person) + timedelta(days=self.rng.randint(*WITHDRAW_AFTER_DAYS),
                                                     hours=10)
        if at > self.now:
            return None
        return self.row(at, "course_withdrawn", user=person.user_id, visitor=None,
                        session=None, device=person.device, source="server")

    def coursework(self, klass: DemoClass, people: dict[uuid.UUID, Person],
                   left: dict[uuid.UUID, datetime], number: int) -> list[EventRow]:
        """A quest a week for ``klass``: assigned (``quest_assigned`` with ``due_at``) to each
        student enrolled and not withdrawn, and handed in by persona, never after the
        student's last day of activity."""
        rows: list[EventRow] = []
        for week, offset in enumerate(range(self.days - 1, -1, -ASSIGN_EVERY_DAYS)):
            qid, title, pillar, xp = QUESTS[(number * 3 + week) % len(QUESTS)]
            assigned = self.midnight - timedelta(days=offset) + timedelta(hours=8)
            due = assigned + timedelta(days=DUE_AFTER_DAYS)
            data = {"quest_id": qid, "quest_title": title}
            for student in klass.students:
                person = people[student]
                if person.first_day < offset or left.get(student, self.now) <= assigned:
                    continue  # not enrolled yet, or already withdrawn
                rows.append(self.row(assigned, "quest_assigned", user=student, visitor=None,
                                     session=None, device=person.device, source="server",
                                     data={**data, "due_at": due.isoformat()}))
                handed = self._handed_in(person, assigned, due)
                if handed is None:
                    continue
                share = self.rng.uniform(*XP_SHARE[person.persona])
                kw: dict[str, Any] = {
                    "user": student, "session": _uuid(self.rng), "device": person.device,
                    "visitor": _hash16("user", str(student), handed.date().isoformat())}
                rows.append(self.row(handed - timedelta(minutes=20), "quest_started",
                                     page=f"/quests/{qid}", data=data, **kw))
                rows.append(self.row(handed, "quest_completed", page=f"/quests/{qid}/submit",
                                     data={**data, "pillar": pillar, "xp": round(xp * share)},
                                     **kw))
        return rows

    def _handed_in(self, person: Person, assigned: datetime, due: datetime) -> datetime | None:
        """When ``person`` hands in work assigned at ``assigned`` (None: never, or not yet)."""
        roll = self.rng.random()
        if roll < ON_TIME[person.persona]:
            at = assigned + (due - assigned) * self.rng.uniform(0.1, 0.95)
        elif roll < ON_TIME[person.persona] + LATE[person.persona]:
            at = due + timedelta(hours=self.rng.uniform(6, 96))
        else:
            return None
        return at if at <= min(self._last_day_ends(person), self.now) else None

    def _last_day_ends(self, person: Person) -> datetime:
        """The end of ``person``'s last day of activity (midnight after it)."""
        return self.midnight - timedelta(days=person.last_day - 1)

    def parent_session(self, parent: Person, children: list[Person]) -> list[EventRow]:
        """A parent opening the dashboard to look at a child."""
        day = self.rng.randint(0, min(60, self.days - 1))
        at = self._when(day)
        kw: dict[str, Any] = {"user": parent.user_id, "visitor": _hash16("user", str(
            parent.user_id), str(day)), "session": _uuid(self.rng), "device": parent.device}
        child = self.rng.choice(children)
        return [self.row(at, "login_success", **kw),
                self.row(at + timedelta(seconds=2), "page_view", page="/parent", load=600, **kw),
                self.row(at + timedelta(seconds=3), "parent_dashboard_opened", page="/parent",
                         data={"student_id": str(child.user_id)}, **kw)]

    def visitor_session(self) -> list[EventRow]:
        """An anonymous landing visit from a campaign, sometimes converting the same day."""
        rng = self.rng
        day = rng.randint(0, self.days - 1)
        at = self._when(day)
        network = _hash16("net", str(rng.getrandbits(32)), str(day))
        utm = rng.choice(CAMPAIGNS)
        ref = {"instagram": "https://instagram.com/", "google": "https://www.google.com/"}.get(
            utm[0] or "", None)
        kw: dict[str, Any] = {"user": None, "visitor": _hash16("anon", str(network)),
                              "session": _uuid(rng), "device": rng.choice(DEVICES)}
        rows = [self.row(at, "landing_visit", page="/", referrer=ref, utm=utm, network=network,
                         data={"url": "/", "consent": True}, **kw)]
        rows.append(self.row(at + timedelta(seconds=1), "page_view", page="/", referrer=ref,
                             utm=utm, load=int(rng.lognormvariate(6.4, 0.5)), **kw))
        if rng.random() < 0.25:
            later = min(at + timedelta(minutes=rng.randint(1, 120)), self.now)
            if later.date() == at.date():
                rows.append(self.row(
                    later, "conversion", network=network, source="server",
                    data={"event": "first_game_open", "storefront": rng.choice(STOREFRONTS)},
                    **kw))
        return rows


def iter_events(factory: EventFactory, students: list[Person],
                families: list[tuple[Person, list[Person]]], total: int) -> Iterator[EventRow]:
    """Exactly ``total`` event rows: student sessions mostly, some parents and visitors."""
    rng = factory.rng
    weights = [p.weight for p in students]
    cumulative = list(_accumulate(weights))
    written = 0
    while written < total:
        roll = rng.random()
        if roll < 0.08:
            rows = factory.visitor_session()
        elif roll < 0.10 and families:
            parent, children = rng.choice(families)
            rows = factory.parent_session(parent, children)
        else:
            person = students[_pick(rng, cumulative)]
            rows = factory.student_session(person)
        yield from rows[: total - written]
        written += min(len(rows), total - written)


def _coursework(factory: EventFactory, people: list[Person], classes: list[DemoClass],
                summary: DemoSummary) -> list[EventRow]:
    """The withdrawals, then each class's weekly quests (the club is no taught class)."""
    by_id = {p.user_id: p for p in people}
    rows: list[EventRow] = []
    left: dict[uuid.UUID, datetime] = {}
    for person in people:
        withdrawn = factory.withdrawal(person)
        if withdrawn is not None:
            rows.append(withdrawn)
            left[person.user_id] = datetime.fromisoformat(withdrawn[OCCURRED_AT])
    summary.withdrawals = len(rows)
    for number, klass in enumerate(c for c in classes if c.name != CLUB[0]):
        work = factory.coursework(klass, by_id, left, number)
        summary.assignments += sum(1 for r in work if r[EVENT_TYPE] == "quest_assigned")
        rows.extend(work)
    return rows


def _accumulate(weights: list[float]) -> Iterator[float]:
    running = 0.0
    for weight in weights:
        running += weight
        yield running


def _pick(rng: random.Random, cumulative: list[float]) -> int:
    return bisect.bisect_left(cumulative, rng.random() * cumulative[-1])


def load(conn: psycopg.Connection[Any], *, events: int, students: int, days: int,
         seed: int = 1, now: datetime | None = None, coursework: bool = False) -> DemoSummary:
    """Write the demo data set into a migrated database through ``conn`` (service role).

    ``events`` counts the sessions' rows; ``coursework`` adds the classes' assigned quests,
    what is handed in, and the withdrawals (module docstring) on top of them. The summary's
    ``events`` counts every row written."""
    if events < 0 or students < 1 or days < 1:
        raise ValueError("events must be ≥ 0, students and days ≥ 1")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    rng = random.Random(seed)  # noqa: S311 - seeded demo data, reproducible on purpose
    people = build_students(rng, students, days)
    families = build_parents(rng, people)
    factory = EventFactory(rng, now, days)
    summary = DemoSummary(students=len(people), parents=len(families))
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in EVENT_COLUMNS)
    with conn.cursor() as cur:
        # Sessions are drawn in random order; staging them and inserting in time order
        # gives the table the physical order real ingestion has (BRIN indexes rely on it).
        cur.execute(QUERIES["drop_staging"])
        cur.execute(QUERIES["make_partitions"], {"first": (now - timedelta(days=days + 1)).date(),
                                                 "last": now.date()})
        cur.execute(CREATE_STAGING_SQL)
        staging = sql.SQL("COPY pg_temp.demo_events ({}) FROM STDIN").format(columns)
        with cur.copy(staging) as copy:
            for row in iter_events(factory, people, families, events):
                copy.write_row(row)
                summary.events += 1
        classes = build_classes(rng, people)
        if coursework:
            work = _coursework(EventFactory(random.Random(f"coursework-{seed}"), now, days),  # noqa: S311
                               people, classes, summary)
            with cur.copy(staging) as copy:
                for row in work:
                    copy.write_row(row)
            summary.events += len(work)
        cur.execute(sql.SQL("INSERT INTO public.user_activity_events ({}) SELECT {} "
                            "FROM pg_temp.demo_events ORDER BY occurred_at").format(columns, columns))
        cur.execute(QUERIES["drop_staging"])
        cur.execute(SUMMARIZE_BRIN_SQL)
        summary.errors = _write_errors(cur, factory.errors, now)
        summary.guardian_links = _write_links(cur, families)
        summary.classes = _write_classes(cur, classes)
    summary.admin_ids = [str(_uuid(rng)) for _ in range(2)]
    summary.sample_student_ids = [str(p.user_id) for p in people[:3]]
    summary.sample_parent_ids = [str(p.user_id) for p, _ in families[:2]]
    summary.sample_teacher_ids = list(dict.fromkeys(str(c.teacher_id) for c in classes))[:2]
    for person in people:
        summary.personas[person.persona] = summary.personas.get(person.persona, 0) + 1
    return summary


#: Summarize the new block ranges of the events table's BRIN indexes now: until then
#: (autovacuum, later) every range-restricted query would read the whole table.
SUMMARIZE_BRIN_SQL = QUERIES["summarize_brin"]

CREATE_STAGING_SQL = QUERIES["create_staging"]

INSERT_GROUP = QUERIES["insert_group"]

REFRESH_GROUPS = QUERIES["refresh_groups"]


def _write_errors(cur: psycopg.Cursor[Any], errors: list[tuple[Any, ...]], now: datetime) -> int:
    """error_events rows for the generated error events, grouped by fingerprint."""
    group_ids = []
    for n, (error_type, message, component, endpoint) in enumerate(ERROR_GROUPS):
        cur.execute(INSERT_GROUP, (f"demo-{n}", error_type, message, component, endpoint,
                                   now, now))
        row = cur.fetchone()
        group_ids.append(row[0] if row else None)
    columns = ", ".join(ERROR_COLUMNS)
    with cur.copy(f"COPY public.error_events ({columns}) FROM STDIN") as copy:
        for error in errors:
            copy.write_row((*error[:-1], group_ids[error[-1]]))
    cur.execute(REFRESH_GROUPS)
    return len(errors)


def _write_links(cur: psycopg.Cursor[Any], families: list[tuple[Person, list[Person]]]) -> int:
    rows = [(str(parent.user_id), str(child.user_id)) for parent, children in families
            for child in children]
    cur.executemany(QUERIES["insert_link"], rows)
    return len(rows)


def _write_classes(cur: psycopg.Cursor[Any], classes: list[DemoClass]) -> int:
    cur.executemany(QUERIES["insert_class"], [(c.class_id, c.name) for c in classes])
    cur.executemany(QUERIES["insert_membership"],
                    [(c.class_id, c.teacher_id, "teacher") for c in classes]
                    + [(c.class_id, s, "student") for c in classes for s in c.students])
    return len(classes)
