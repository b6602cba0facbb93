"""Alert jobs: ``waymark alerts`` (after ``waymark score``) and ``waymark digest`` (weekly).

Both hold their advisory lock, print one summary line and are safe to re-run: a crossing
is found once (its unique key) and each planned delivery is claimed by one run only.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from backend.config import AlertSettings
from backend.db import Database
from backend.scripts import runtime
from backend.services.alerts import crossings, deliveries, digest


def _now() -> datetime:
    return datetime.now(UTC)


def run_alerts(db: Database, settings: AlertSettings, *, wait_seconds: float) -> dict[str, int]:
    """Find new crossings, plan their deliveries, send what is due; returns the counts."""
    with db.connection() as conn:
        found, planned = crossings.find_and_plan(conn, settings, now=_now())
    counts = deliveries.deliver_due(db, settings, clock=_now, wait_seconds=wait_seconds)
    return {"crossings": found, "planned": planned, **counts.as_dict()}


@click.command("alerts")
@click.option("--wait", "wait_seconds", type=click.FloatRange(0, 3600), default=60.0,
              show_default=True, help="How long to wait for retries falling due in this run.")
def alerts_command(wait_seconds: float) -> None:
    """Tell teachers, parents and admins when a student's stored risk crosses the threshold."""
    started = time.monotonic()
    settings = runtime.load_settings().alerts
    with runtime.locked_database("alerts") as db:
        if db is None:
            return
        counts = run_alerts(db, settings, wait_seconds=wait_seconds)
        runtime.summary("alerts", **counts, seconds=f"{time.monotonic() - started:.1f}")


@click.command("digest")
def digest_command() -> None:
    """Send this week's digest to every teacher and parent (cron: weekly, Monday morning)."""
    started = time.monotonic()
    settings = runtime.load_settings()
    with runtime.locked_database("digest") as db:
        if db is None:
            return
        counts = digest.send_digests(db, settings.alerts, now=_now(),
                                     min_group_size=settings.min_group_size)
        runtime.summary("digest", **counts.as_dict(), seconds=f"{time.monotonic() - started:.1f}")


COMMANDS: list[click.Command] = [alerts_command, digest_command]
