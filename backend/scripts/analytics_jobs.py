"""Analytics jobs: ``waymark rollup``, ``waymark score``, ``waymark milestones``, ``waymark demo``.

Each job is idempotent, holds its advisory lock for the whole run (a second run at the
same time says so and exits 0), works in small transactions (a day, or a batch of
students), shows a progress bar on a terminal and prints one summary line.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import click

from backend import migrations
from backend.db import Database
from backend.scripts import demo_data, runtime
from backend.services.analytics import milestones, page_prefix, risk, rollup
from backend.services.analytics.risk import parameter_sets


def roll_up(db: Database, *, now: datetime, lookback_days: int) -> tuple[int, int]:
    """Roll up every closed day that needs it; returns (days, pages written)."""
    with db.connection() as conn:
        days = rollup.days_to_roll(conn, now=now, lookback_days=lookback_days)
    pages = 0
    with runtime.progress(len(days), "rolling up days") as bar:
        for day in days:
            with db.connection() as conn:
                pages += rollup.roll_up_day(conn, day)
            bar.update(1)
    return len(days), pages


def roll_up_hours(db: Database, *, now: datetime) -> int:
    """Roll up today's closed hours that need it (and drop past days' hours); returns hours.

    Also today's page views up to the last 10-minute mark (``page_prefix``), when due.
    """
    with db.connection() as conn:
        rollup.forget_past_hours(conn, now=now)
        hours = rollup.hours_to_roll(conn, now=now)
    with runtime.progress(len(hours), "rolling up today's hours") as bar:
        for hour in hours:
            with db.connection() as conn:
                rollup.roll_up_hour(conn, hour)
            bar.update(1)
    with db.connection() as conn:
        page_prefix.roll_up_prefix(conn, now=now)
    return len(hours)


def score_all(db: Database, *, now: datetime, batch_size: int,
              params: risk.RiskParams = risk.DEFAULT_PARAMS,
              history_days: int) -> dict[str, int]:
    """Score every student in batches and store today's assessment; returns counts by level."""
    with db.connection() as conn:
        students = milestones.student_ids(conn, now=now, history_days=history_days)
        # The cohort-relative factors compare with a class or every student, not one batch;
        # the medians are stored so that a live answer for one student agrees. Without a
        # cohort weight, no factor reads them: no second pass over every student's inputs.
        cohorts = None
        if params.uses_cohorts:
            inputs = risk.fetch_inputs(conn, now=now, params=params, history_days=history_days)
            cohorts = risk.cohorts_of(inputs, risk.student_classes(conn))
            with conn.transaction():
                risk.save_cohorts(conn, cohorts, students=len(inputs), now=now)
    levels = dict.fromkeys(risk.LEVELS, 0)
    written = 0
    with runtime.progress(len(students), "scoring students") as bar:
        for batch in runtime.chunks(students, batch_size):
            with db.connection() as conn:
                assessments = risk.score_students(conn, now=now, params=params, user_ids=batch,
                                                   cohorts=cohorts, history_days=history_days)
                written += risk.store_assessments(conn, assessments, now=now, params=params)
            for assessment in assessments:
                levels[assessment.level] += 1
            bar.update(len(batch))
    return {"students": len(students), "written": written, **levels}


def write_milestones(db: Database, *, now: datetime, batch_size: int,
                     history_days: int) -> tuple[int, int]:
    """Add missing milestone rows for every student in batches; returns (students, added)."""
    with db.connection() as conn:
        students = milestones.student_ids(conn, now=now, history_days=history_days)
    added = 0
    with runtime.progress(len(students), "writing milestones") as bar:
        for batch in runtime.chunks(students, batch_size):
            with db.connection() as conn:
                added += milestones.write_milestones(conn, batch, now=now,
                                                     history_days=history_days)
            bar.update(len(batch))
    return len(students), added


LOOKBACK = click.option("--lookback-days", type=click.IntRange(1, 3660), default=400,
                        show_default=True, help="How far back closed days are checked.")
BATCH = click.option("--batch-size", type=click.IntRange(1, 10_000), default=500,
                     show_default=True, help="Students per transaction.")


@click.command("rollup")
@LOOKBACK
def rollup_command(lookback_days: int) -> None:
    """Roll up closed days, today's closed hours and page-view prefix, and make the events'
    week partitions of the coming two weeks (cron: every 10 min)."""
    started = time.monotonic()
    with runtime.locked_database("rollup") as db:
        if db is None:
            return
        now = datetime.now(UTC)
        with db.connection() as conn:  # the coming days' partitions of the events, ahead
            partitions = migrations.ensure_event_partitions(conn)
        days, pages = roll_up(db, now=now, lookback_days=lookback_days)
        hours = roll_up_hours(db, now=now)
        runtime.summary("rollup", days=days, pages=pages, hours=hours, partitions=partitions,
                        seconds=f"{time.monotonic() - started:.1f}")


@click.command("score")
@BATCH
@click.option("--milestones/--no-milestones", "with_milestones", default=True,
              show_default=True, help="Also write milestone rows.")
def score_command(batch_size: int, with_milestones: bool) -> None:
    """Store a risk assessment (score, level, factors) per student for today (cron: daily)."""
    started = time.monotonic()
    with runtime.locked_database("score") as db:
        if db is None:
            return
        now = datetime.now(UTC)
        with db.connection() as conn:  # the set risk-calibrate adopted, else WAYMARK_RISK_*
            active = parameter_sets.active_set(conn)
        settings = runtime.load_settings()
        params = active.params if active else risk.params_from_settings(settings)
        history = settings.anonymize_after_days
        counts = score_all(db, now=now, batch_size=batch_size, params=params,
                           history_days=history)
        added = write_milestones(db, now=now, batch_size=batch_size,
                                 history_days=history)[1] if with_milestones else 0
        runtime.summary("score", **counts, milestones=added,
                        seconds=f"{time.monotonic() - started:.1f}")


@click.command("milestones")
@BATCH
def milestones_command(batch_size: int) -> None:
    """Add milestone rows: quests completed, badges earned, streaks reached (idempotent)."""
    started = time.monotonic()
    with runtime.locked_database("milestones") as db:
        if db is None:
            return
        students, added = write_milestones(
            db, now=datetime.now(UTC), batch_size=batch_size,
            history_days=runtime.load_settings().anonymize_after_days)
        runtime.summary("milestones", students=students, added=added,
                        seconds=f"{time.monotonic() - started:.1f}")


HAS_EVENTS_SQL = "SELECT EXISTS (SELECT 1 FROM public.user_activity_events) AS has_events"


@click.command("demo")
@click.option("--students", type=click.IntRange(1, 100_000), default=300, show_default=True)
@click.option("--days", type=click.IntRange(1, 730), default=90, show_default=True)
@click.option("--events", type=click.IntRange(0, 50_000_000), default=0,
              help="Session events to write (default: 500 per student); the classes' "
                   "coursework and the withdrawals come on top.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--if-empty", is_flag=True, help="Do nothing when the database has events.")
def demo_command(students: int, days: int, events: int, seed: int, if_empty: bool) -> None:
    """Load realistic, deterministic demo data, then roll up, score and add milestones."""
    started = time.monotonic()
    with runtime.locked_database("demo") as db:
        if db is None:
            return
        row = db.fetch_one(HAS_EVENTS_SQL)
        if if_empty and row and row["has_events"]:
            runtime.summary("demo", status="skipped", reason="database-has-events")
            return
        now = datetime.now(UTC)
        with db.connection() as conn:
            loaded = demo_data.load(conn, events=events or students * 500, students=students,
                                    days=days, seed=seed, now=now, coursework=True)
        _, pages = roll_up(db, now=now, lookback_days=days + 1)
        roll_up_hours(db, now=now)
        activate_demo_set(db, now=now)  # scored with and named in every answer, as a fitted set
        params = DEMO_RISK_PARAMS
        history = runtime.load_settings().anonymize_after_days  # as `waymark score` reads
        # the nightly score's past runs, a week apart, so risk over time has a history
        for weeks_back in range(DEMO_SCORE_HISTORY_WEEKS, 0, -1):
            score_all(db, now=now - timedelta(weeks=weeks_back), batch_size=500, params=params,
                      history_days=history)
        scored = score_all(db, now=now, batch_size=500, params=params, history_days=history)
        _, added = write_milestones(db, now=now, batch_size=500, history_days=history)
        click.echo(f"admin ids (any uuid works as admin): {', '.join(loaded.admin_ids)}")
        click.echo(f"student ids: {', '.join(loaded.sample_student_ids)}")
        click.echo(f"parent ids: {', '.join(loaded.sample_parent_ids)}")
        click.echo(f"teacher ids: {', '.join(loaded.sample_teacher_ids)}")
        click.echo("try: waymark dev-token --role admin, then GET /api/analytics/at-risk-students;"
                   " or waymark dev-token <teacher id> --role teacher, then GET "
                   "/api/analytics/students")
        runtime.summary("demo", events=loaded.events, errors=loaded.errors,
                        students=loaded.students, parents=loaded.parents,
                        classes=loaded.classes, assignments=loaded.assignments,
                        withdrawals=loaded.withdrawals, rollup_pages=pages,
                        at_risk=scored["at_risk"], milestones=added,
                        seconds=f"{time.monotonic() - started:.1f}")


#: weekly past scores `waymark demo` stores before today's (the student detail's history)
DEMO_SCORE_HISTORY_WEEKS = 3

#: The risk parameters `waymark demo` makes active for its made-up school, so its dashboard
#: shows every kind of factor a deployment may use: the seed's activity factors
#: (inactivity 0.40 → 0.30, login frequency 0.25 → 0.15), missed deadlines (its classes
#: get a quest a week) and the student against their class (days behind it, active days
#: and quest xp below its median; classes of about 25, so a class is each student's
#: cohort) — eight factors. Chosen by hand, not fitted, and its label says so; the demo
#: records withdrawals, so `waymark risk-calibrate` can fit a set on it (README, "Try the
#: self-calibration"), and `--roll-back` returns to this one, then to `WAYMARK_RISK_*`.
DEMO_RISK_PARAMS = risk.RiskParams(
    inactivity_weight=0.30, login_weight=0.15, quest_weight=0.05, session_weight=0.0,
    streak_weight=0.05, deadline_weight=0.15, cohort_gap_weight=0.15,
    cohort_activity_weight=0.10, cohort_score_weight=0.05)


def activate_demo_set(db: Database, *, now: datetime) -> int:
    """Make :data:`DEMO_RISK_PARAMS` the active set (``risk_parameter_sets``); its id.

    No outcome and no held-out period: its ``validation`` has no AUC and names its source,
    so answers show ``source: "waymark demo"`` and ``validation_auc: null``.
    """
    with db.connection() as conn:
        return parameter_sets.activate(
            conn, DEMO_RISK_PARAMS, now=now, outcome="none (demo)", fit_at=now,
            validate_at=now, validated_until=now,
            validation={"source": "waymark demo", "auc": None,
                        "method": "chosen by hand for the demo school: not fitted"})

COMMANDS: list[click.Command] = [rollup_command, score_command, milestones_command, demo_command]
