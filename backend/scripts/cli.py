"""The ``waymark`` command. Cron jobs are its subcommands; each prints a one-line summary."""

from __future__ import annotations

import logging
import time
import uuid

import click
import jwt
import psycopg

from backend import migrations
from backend.config import with_dev_secret
from backend.db import MISSING_SCHEMA_ERRORS
from backend.scripts import commands, runtime
from backend.scripts.serve import serve as run_server


class WaymarkGroup(click.Group):
    """The ``waymark`` group: a job run against a database that lacks this version's
    migrations says so and names the fix, instead of a traceback about a missing table."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MISSING_SCHEMA_ERRORS as exc:
            missing = _pending()
            if not missing:
                raise  # every migration is there: a bug, with its traceback
            raise click.ClickException(
                f"the database lacks {len(missing)} migrations this version of Waymark needs "
                f"(first: {missing[0]}); run `waymark migrate` first") from exc


def _pending() -> list[str]:
    """The configured database's missing migrations; empty when it cannot be asked."""
    try:
        return migrations.pending(runtime.database_url(runtime.load_settings()))
    except psycopg.Error:
        return []


@click.group(cls=WaymarkGroup)
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


#: ``waymark serve``'s threads per worker. A durable request holds its thread while it waits
#: for the commit, so threads bound how many requests share one: single events on 2 cores,
#: 1,185 events/s with 8 threads against 1,665 with 32 (bench/README.md, "Durable
#: acknowledgement"); queued answers at once and runs best with fewer.
DURABLE_THREADS = 32
QUEUED_THREADS = 8


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", type=int, default=None,
              help=f"Threads per worker [default: {DURABLE_THREADS} with WAYMARK_ACK=commit, "
                   f"{QUEUED_THREADS} with queued].")
@click.option("--no-access-log", is_flag=True, help="Do not write an access log.")
def serve(host: str, port: int, workers: int, threads: int | None, no_access_log: bool) -> None:
    """Serve the API with gunicorn (the embedded database is started first if needed)."""
    settings = with_dev_secret(runtime.load_settings())
    if threads is None:
        threads = DURABLE_THREADS if settings.ack == "commit" else QUEUED_THREADS
    url = runtime.database_url(settings)
    pending = migrations.pending(url)
    if pending:
        click.echo(f"waymark serve: {len(pending)} pending migrations; run `waymark migrate`",
                   err=True)
    app_config: dict[str, object] = {"WAYMARK_DATABASE_URL": url,
                                     "WAYMARK_EMBEDDED": settings.database_url is None}
    if settings.dev_mode:
        app_config["WAYMARK_JWT_SECRET"] = settings.jwt_secret
        click.echo(f"waymark serve: local mode (embedded database under {settings.data_dir}); "
                   "mint a token with `waymark dev-token --role admin`, dashboard at "
                   f"http://{host}:{port}/dashboard", err=True)
    run_server(host, port, workers, threads, not no_access_log, app_config)


@main.command("dev-token")
@click.argument("user_id", required=False)
@click.option("--user", "user_option", metavar="USER_ID",
              help="The user the token is for (the same as the USER_ID argument).")
@click.option("--role", type=click.Choice(["student", "parent", "teacher", "admin"]), default="admin",
              show_default=True)
@click.option("--hours", type=click.IntRange(1, 24 * 30), default=12, show_default=True)
def dev_token(user_id: str | None, user_option: str | None, role: str, hours: int) -> None:
    """Print an HS256 access token signed with the configured (or local) JWT secret.

    Without USER_ID (or --user) each call is a new random user: pass the id to act as the
    same person again, e.g. a demo student `waymark demo` printed. For trying the API and
    the dashboard locally, and for operators testing a deployment; in production your
    users' tokens come from Supabase Auth.
    """
    if user_id and user_option and user_id != user_option:
        raise click.BadParameter("give the user once: USER_ID or --user", param_hint="--user")
    user_id = user_id or user_option
    settings = with_dev_secret(runtime.load_settings())
    if not settings.jwt_secret:
        raise click.ClickException("no JWT secret: set WAYMARK_JWT_SECRET (or SUPABASE_JWT_SECRET)")
    try:
        subject = str(uuid.UUID(user_id)) if user_id else str(uuid.uuid4())
    except ValueError:
        raise click.BadParameter("USER_ID must be a uuid", param_hint="USER_ID") from None
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": subject, "aud": "authenticated", "role": "authenticated",
        "iat": now, "exp": now + hours * 3600, "app_metadata": {"role": role},
    }
    if settings.supabase_url:
        claims["iss"] = f"{settings.supabase_url.rstrip('/')}/auth/v1"
    click.echo(jwt.encode(claims, settings.jwt_secret, algorithm="HS256"))


def _register_commands() -> None:
    """Attach the job commands defined in their own modules."""
    for command in commands.ALL:
        main.add_command(command)


_register_commands()
