"""``waymark risk-backtest``: how well, and how early, the risk score saw an outcome coming.

Over the deployment's own events and the current risk parameters: at each ``--as-of``
moment every student scored then (and not yet at the outcome) is labelled by whether the
outcome event (``--outcome``, e.g. ``course_withdrawn``) came later. It prints AUC and
precision/recall at ``--threshold``, and the **lead time**: for the students flagged at
that moment who later reached the outcome, the days between their first flag — the
earliest weekly step (``--step-days``) since the history began at which their score was
at or above the threshold, re-scored with ``risk.score_students`` — and the outcome
(median and quartiles). Live alerts record the same start as
``alert_crossings.first_flagged_at``.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import psycopg

from backend.db import fetch_all, fetch_one
from backend.queries import Queries
from backend.scripts import runtime
from backend.services.analytics import risk
from backend.services.analytics.risk import calibrate, parameter_sets

QUERIES = Queries.load("backend.scripts", "backtest.sql")


@dataclass(frozen=True)
class Backtest:
    """One as-of moment's figures."""

    as_of: datetime
    students: int
    positives: int
    auc: float | None  # None: nobody, or everybody, scored then reached the outcome
    precision: float
    recall: float
    flagged_positives: int
    lead_days: tuple[float, float, float] | None   # quartiles: 25 %, median, 75 %


def quartiles(values: Sequence[float]) -> tuple[float, float, float] | None:
    """(25 %, median, 75 %) or None when there is nothing to measure."""
    if not values:
        return None
    if len(values) == 1:
        return (values[0], values[0], values[0])
    q = statistics.quantiles(values, n=4, method="inclusive")
    return (q[0], q[1], q[2])


def backtest(conn: psycopg.Connection[Any], *, outcome: str, as_of: datetime,
             threshold: float, step: timedelta, params: risk.RiskParams,
             start: datetime | None = None,
             history_days: int) -> Backtest:
    """Score everyone at ``as_of``, label by a later outcome, measure first-flag lead time.

    ``history_days``: how far back a person's history is read (the anonymization age, as
    ``waymark score`` reads it).
    """
    outcomes = {r["user_id"]: r["outcome_at"]
                for r in fetch_all(conn, QUERIES["outcomes"], {"outcome": outcome})}
    scored = [a for a in risk.score_students(conn, now=as_of, params=params,
                                             history_days=history_days)
              if outcomes.get(a.user_id) is None or outcomes[a.user_id] > as_of]
    labels = [a.user_id in outcomes for a in scored]
    scores = [a.score for a in scored]
    flagged = [a.user_id for a in scored if a.score >= threshold]
    true_flags = [u for u in flagged if u in outcomes]
    precision = len(true_flags) / len(flagged) if flagged else 0.0
    recall = len(true_flags) / sum(labels) if any(labels) else 0.0
    first = _first_flags(conn, true_flags, as_of=as_of, threshold=threshold, step=step,
                         params=params, start=start, history_days=history_days)
    leads = sorted((outcomes[u] - first[u]).total_seconds() / 86400 for u in true_flags)
    return Backtest(as_of=as_of, students=len(scored), positives=sum(labels),
                    auc=calibrate.roc_auc(scores, labels), precision=precision, recall=recall,
                    flagged_positives=len(true_flags), lead_days=quartiles(leads))


def _first_flags(conn: psycopg.Connection[Any], users: list[uuid.UUID], *, as_of: datetime,
                 threshold: float, step: timedelta, params: risk.RiskParams,
                 start: datetime | None, history_days: int) -> dict[uuid.UUID, datetime]:
    """The earliest step (from the history's start, every ``step``) each user was flagged."""
    first: dict[uuid.UUID, datetime] = dict.fromkeys(users, as_of)
    if not users:
        return first
    if start is None:
        row = fetch_one(conn, QUERIES["first_event"])
        start = row["first_at"] if row and row["first_at"] else as_of
    at, waiting = start + step, set(users)
    while at < as_of and waiting:
        for a in risk.score_students(conn, now=at, params=params, user_ids=sorted(waiting),
                                     history_days=history_days):
            if a.score >= threshold:
                first[a.user_id] = at
                waiting.discard(a.user_id)
        at += step
    return first


def print_backtest(label: str, result: Backtest, threshold: float) -> None:
    """The figures of one as-of moment, one per line."""
    click.echo(f"-- {label} (as of {result.as_of.isoformat()})")
    click.echo(f"students scored (later reached the outcome): {result.students} "
               f"({result.positives})")
    if result.auc is not None:
        click.echo(f"AUC: {result.auc:.3f}")
    elif result.positives:
        click.echo(f"AUC: none (every student scored then reached {label} later)")
    else:
        click.echo(f"AUC: none (no student scored then reached {label} later: pick an "
                   "earlier --as-of)")
    click.echo(f"precision / recall at {threshold}: {result.precision:.3f} / "
               f"{result.recall:.3f}")
    click.echo(lead_text(result))


def lead_text(result: Backtest) -> str:
    """The lead time in one line (also printed by ``waymark risk-calibrate``)."""
    lead = ("none flagged" if result.lead_days is None else
            " / ".join(f"{d:.1f}" for d in result.lead_days))
    return (f"lead time, days from first flag to outcome (25% / median / 75%) of "
            f"{result.flagged_positives} flagged: {lead}")


@click.command("risk-backtest")
@click.option("--outcome", default="course_withdrawn", show_default=True,
              help="The event type that marks the outcome to predict.")
@click.option("--as-of", "as_of", type=click.DateTime(), multiple=True,
              help="Moments to evaluate at (UTC; repeatable). Default: now.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.7, show_default=True)
@click.option("--step-days", type=click.IntRange(1, 90), default=7, show_default=True,
              help="How often the history is re-scored to find each student's first flag.")
def backtest_command(outcome: str, as_of: tuple[datetime, ...], threshold: float,
                     step_days: int) -> None:
    """AUC, precision/recall and lead time of the risk score against a later outcome event."""
    started = time.monotonic()
    settings = runtime.load_settings()
    moments = [m.replace(tzinfo=UTC) for m in as_of] or [datetime.now(UTC)]
    with runtime.open_database(settings) as db, db.connection() as conn:
        active = parameter_sets.active_set(conn)  # what `waymark score` scores with
        params = active.params if active else risk.params_from_settings(settings)
        for moment in moments:
            result = backtest(conn, outcome=outcome, as_of=moment, threshold=threshold,
                              step=timedelta(days=step_days), params=params,
                              history_days=settings.anonymize_after_days)
            print_backtest(outcome, result, threshold)
    runtime.summary("risk-backtest", moments=len(moments),
                    seconds=f"{time.monotonic() - started:.1f}")


COMMANDS: list[click.Command] = [backtest_command]
