"""Privacy jobs: ``rotate-salts``, ``anonymize``, ``purge``, ``forget USER_ID``, ``export USER_ID``.

The cron jobs (rotate-salts, anonymize, purge) hold their advisory lock for the whole
run — a second run at the same time says so and exits 0 — work in short batches, show a
progress bar on a terminal and print one summary line. ``forget`` and ``export`` are
operator commands for requests that arrive outside the API (e.g. by e-mail).
"""

from __future__ import annotations

import json
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import click

from backend import migrations
from backend.scripts import runtime
from backend.services.ingest import counters
from backend.services.privacy import export as export_service
from backend.services.privacy import partitions, retention, salt_rotation
from backend.services.privacy.forget import forget_user

#: counter rows of ingestion processes silent this long are deleted by purge
QUIET_PROCESSES_KEPT = timedelta(days=1)

SHORT_NAMES = {"user_activity_events": "events", "user_sessions": "sessions",
               "error_events": "errors", "error_groups": "error_groups",
               "learning_journey_events": "journey", "page_view_analytics": "page_views",
               "privacy_audit": "audit", "waymark.dead_letters": "dead_letters"}


class _Progress:
    """A progress bar opened once the job knows how many blocks it will walk."""

    def __init__(self, stack: ExitStack, label: str) -> None:
        self.stack = stack
        self.label = label
        self.bar: Any = None

    def start(self, total: int) -> None:
        self.bar = self.stack.enter_context(runtime.progress(total, self.label))

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)


def _print_run(job: str, stats: retention.RunStats) -> None:
    counts = {SHORT_NAMES.get(t, t): n for t, n in stats.rows.items()}
    cutoffs = {"cutoff": stats.cutoff.date().isoformat()}
    if stats.collect_cutoff is not None:
        cutoffs["collect_cutoff"] = stats.collect_cutoff.date().isoformat()
    runtime.summary(job, status="done", **cutoffs, rows=stats.total, **counts,
                    weeks=stats.partitions, batches=stats.batches,
                    seconds=f"{stats.seconds:.1f}",
                    longest_batch=f"{stats.longest_batch_seconds:.2f}s")


@click.command("rotate-salts")
def rotate_salts() -> None:
    """Create this period's salt, destroy salts whose period is over, VACUUM them away."""
    settings = runtime.load_settings()
    with runtime.locked_database("rotate-salts") as db:
        if db is None:
            return
        result = salt_rotation.rotate_salts(db, now=datetime.now(UTC),
                                            period=settings.salt_period)
    runtime.summary("rotate-salts", status="done", period=result.current_period.isoformat(),
                    created=int(result.created), destroyed=len(result.destroyed),
                    kept=len(result.kept), vacuum=result.vacuum,
                    lingering=result.lingering_dead_rows)


@click.command()
@click.option("--older-than-days", type=click.IntRange(min=1), default=None,
              help="Anonymize rows older than this [default: WAYMARK_ANONYMIZE_AFTER_DAYS, 90].")
@click.option("--batch-seconds", type=click.FloatRange(min=0.01), default=0.5,
              show_default=True, help="Target length of one batch transaction.")
def anonymize(older_than_days: int | None, batch_seconds: float) -> None:
    """Cut every link to a person from old rows and scrub PII from their data (batched)."""
    settings = runtime.load_settings()
    days = older_than_days or settings.anonymize_after_days
    with runtime.locked_database("anonymize") as db, ExitStack() as stack:
        if db is None:
            return
        bar = _Progress(stack, f"anonymizing rows older than {days} days")
        stats = retention.anonymize(db, now=datetime.now(UTC), older_than_days=days,
                                    pii_keys=settings.pii_keys, target_seconds=batch_seconds,
                                    progress=bar.update, on_start=bar.start)
    _print_run("anonymize", stats)


@click.command()
@click.option("--older-than-days", type=click.IntRange(min=1), default=None,
              help="Delete rows older than this [default: WAYMARK_DELETE_AFTER_DAYS, 730].")
@click.option("--collect-retention-days", type=click.IntRange(min=1), default=None,
              help="Delete /collect and /measure rows older than this "
                   "[default: WAYMARK_COLLECT_RETENTION_DAYS, 30].")
@click.option("--batch-seconds", type=click.FloatRange(min=0.01), default=0.5,
              show_default=True, help="Target length of one batch transaction.")
def purge(older_than_days: int | None, collect_retention_days: int | None,
          batch_seconds: float) -> None:
    """Delete rows older than the retention period from every table (batched)."""
    settings = runtime.load_settings()
    days = older_than_days or settings.delete_after_days
    collect_days = collect_retention_days or settings.collect_retention_days
    with runtime.locked_database("purge") as db, ExitStack() as stack:
        if db is None:
            return
        bar = _Progress(stack, f"deleting rows older than {days} days")
        stats = retention.purge(db, now=datetime.now(UTC), older_than_days=days,
                                collect_retention_days=collect_days,
                                target_seconds=batch_seconds, progress=bar.update,
                                on_start=bar.start)
        with db.connection() as conn:  # the counter rows of ingestion processes long gone
            counters.forget_quiet(conn, QUIET_PROCESSES_KEPT)
    _print_run("purge", stats)


@click.command()
@click.argument("user_id", type=click.UUID)
@click.option("--json", "as_json", is_flag=True, help="Print the whole receipt as JSON.")
def forget(user_id: uuid.UUID, as_json: bool) -> None:
    """Remove every row naming USER_ID from every table; prints the receipt."""
    settings = runtime.load_settings()
    with runtime.open_database(settings) as db:
        receipt = forget_user(db, user_id, now=datetime.now(UTC))
    if as_json:
        click.echo(json.dumps({"user_id": str(user_id), **receipt.as_dict()}, indent=2))
        return
    removed = {SHORT_NAMES.get(t, t): n for t, n in receipt.rows_removed.items() if n}
    runtime.summary("forget", status="done", rows=receipt.total_removed, **removed,
                    mentions_redacted=sum(receipt.mentions_redacted.values()))


@click.command()
@click.argument("user_id", type=click.UUID)
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
              help="Write the JSON here instead of standard output.")
def export(user_id: uuid.UUID, output: TextIO) -> None:
    """Write everything stored about USER_ID as one JSON document (streamed)."""
    settings = runtime.load_settings()
    written = 0
    with runtime.open_database(settings) as db:
        for chunk in export_service.export_user(db, user_id, now=datetime.now(UTC)):
            output.write(chunk)
            written += len(chunk)
    output.flush()
    to_stdout = getattr(output, "name", "-") in ("-", "<stdout>")
    click.echo(f"waymark export: status=done bytes={written}", err=to_stdout)


@click.command("partitions")
@click.option("--ahead", type=click.IntRange(0, 366), default=migrations.PARTITION_DAYS_AHEAD,
              show_default=True,
              help="Make the partition of every week up to this many days ahead.")
def partitions_command(ahead: int) -> None:
    """Make the events' week partitions ahead and list them (`waymark rollup` also makes them)."""
    with runtime.locked_database("partitions") as db:
        if db is None:
            return
        with db.connection() as conn:
            made = migrations.ensure_event_partitions(conn, ahead=ahead)
        parts = partitions.partitions(db)
        weeks = [p for p in parts if p.is_week]
        runtime.summary("partitions", made=made, weeks=len(weeks),
                        first=min((p.from_at for p in weeks if p.from_at), default=None),
                        last=max((p.to_at for p in weeks if p.to_at), default=None),
                        anonymized=sum(1 for p in weeks if p.anonymized_at),
                        legacy="yes" if any(p.from_at is None and not p.is_default for p in parts)
                        else "no")


COMMANDS: list[click.Command] = [rotate_salts, anonymize, purge, forget, export,
                                 partitions_command]
