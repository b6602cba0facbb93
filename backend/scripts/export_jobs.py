"""``waymark warehouse-export`` and ``waymark xapi-sync``: data that leaves, and its deletions.

``warehouse-export``: what is new since the last run, to a warehouse's landing folder.
``xapi-sync``: the same events as xAPI statements to a learning record store.

A cron job like the others: it holds its advisory lock for the run (a second run at the same
time says so and exits 0), reads in one snapshot with a server-side cursor (flat memory) and
prints one summary line. What it writes and how a warehouse loads it: docs/exports.md.
"""

from __future__ import annotations

from datetime import timedelta

import click

from backend.clock import now_utc
from backend.scripts import runtime
from backend.services.exports import warehouse, xapi


@click.command("warehouse-export")
@click.option("--to", "target", required=True, metavar="DIR|s3://BUCKET/PREFIX",
              help="The directory (created if missing) or S3 prefix the warehouse loads "
                   "from; S3 credentials and endpoint from the usual AWS_* variables.")
@click.option("--format", "fmt", type=click.Choice(warehouse.FORMATS), default="parquet",
              show_default=True)
@click.option("--settle-minutes", type=click.IntRange(0, 24 * 60), default=5, show_default=True,
              help="Leave rows received in the last N minutes for the next run (they may "
                   "still be committing).")
def warehouse_export(target: str, fmt: str, settle_minutes: int) -> None:
    """Export new events and errors (day-partitioned) and the deletions since the last run."""
    try:
        to = warehouse.Target.parse(target)
    except (ValueError, OSError) as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from exc
    with runtime.locked_database("warehouse-export") as db:
        if db is None:
            return
        with db.connection() as conn:
            stats = warehouse.export(conn, to, fmt=fmt, now=now_utc(),
                                     settle=timedelta(minutes=settle_minutes))
    runtime.summary("warehouse-export", status="done", format=fmt,
                    **{f"rows_{t}": n for t, n in stats.rows.items()},
                    deletions=stats.deletions, files=len(stats.files))


@click.command("xapi-sync")
@click.option("--settle-minutes", type=click.IntRange(0, 24 * 60), default=5, show_default=True,
              help="Leave events received in the last N minutes for the next run.")
def xapi_sync(settle_minutes: int) -> None:
    """Send new quest, badge, tutor and sign-in events to the LRS as xAPI statements, and void
    the statements of everyone forgotten since the last run."""
    settings = runtime.load_settings().xapi
    if not settings.endpoint:
        raise click.ClickException("set WAYMARK_XAPI_ENDPOINT to the LRS's xAPI base URL "
                                   "(and WAYMARK_XAPI_AUTH): docs/exports.md")
    if not settings.home_page:
        raise click.ClickException("set WAYMARK_XAPI_HOME_PAGE (or WAYMARK_ALLOWED_ORIGINS): "
                                   "the platform's address names the actors and activities")
    with runtime.locked_database("xapi-sync") as db:
        if db is None:
            return
        with db.connection() as conn:
            try:
                stats = xapi.sync(conn, xapi.Lrs(settings), settings.home_page, now=now_utc(),
                                  settle=timedelta(minutes=settle_minutes))
            except xapi.LrsError as exc:
                raise click.ClickException(str(exc)) from exc
    runtime.summary("xapi-sync", status="done", statements=stats.statements,
                    skipped=stats.skipped, forgets=stats.forgets, voided=stats.voided)


COMMANDS: list[click.Command] = [warehouse_export, xapi_sync]
