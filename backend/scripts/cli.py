"""The ``waymark`` command. Cron jobs are its subcommands; each prints a one-line summary."""

from __future__ import annotations

import logging

import click

from backend import migrations
from backend.scripts import runtime


@click.group()
@click.version_option(package_name="waymark")
@click.option("-v", "--verbose", is_flag=True, help="Log what is happening (INFO level).")
def main(verbose: bool) -> None:
    """Waymark: privacy-first activity tracking and learning analytics."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
def migrate() -> None:
    """Apply pending migrations from sql/ (idempotent; concurrent runs take turns)."""
    settings = runtime.load_settings()
    url = runtime.database_url(settings)
    try:
        applied = migrations.migrate(url)
    except migrations.MigrationError as exc:
        raise click.ClickException(str(exc)) from exc
    runtime.summary("migrate", applied=len(applied),
                    names=",".join(applied) if applied else "none")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@click.option("--no-access-log", is_flag=True, help="Do not write an access log.")
def serve(host: str, port: int, workers: int, threads: int, no_access_log: bool) -> None:
    """Serve the API with gunicorn (the embedded database is started first if needed)."""
    from backend.scripts.serve import serve as run_server

    settings = runtime.load_settings()
    url = runtime.database_url(settings)
    pending = migrations.pending(url)
    if pending:
        click.echo(f"waymark serve: {len(pending)} pending migrations; run `waymark migrate`",
                   err=True)
    run_server(host, port, workers, threads, not no_access_log, {"WAYMARK_DATABASE_URL": url})


def _register_commands() -> None:
    """Attach the job commands defined in their own modules."""
    from backend.scripts import commands

    for command in commands.ALL:
        main.add_command(command)


_register_commands()
