"""What a CLI command needs: settings read once from the environment, and the database."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from backend.config import ConfigError, Settings
from backend.db import Database, DatabaseUnavailable, resolve_database_url
from backend.services.jobs import job_lock

T = TypeVar("T")


def load_settings() -> Settings:
    """Settings for a command: the environment is the only source outside a host app."""
    try:
        return Settings.load({}, os.environ)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def database_url(settings: Settings) -> str:
    """The configured database, or the embedded server started (or reused) for it."""
    return resolve_database_url(settings)


@contextmanager
def open_database(settings: Settings) -> Iterator[Database]:
    """An opened pool for the command, closed when it ends; unreachable → clear error."""
    db = Database(database_url(settings), min_size=1, max_size=4, name="waymark-cli")
    try:
        db.open(wait=True, timeout=15)
    except DatabaseUnavailable as exc:
        raise click.ClickException(
            f"{exc}. Check DATABASE_URL, or unset it to use the embedded server.") from exc
    try:
        yield db
    finally:
        db.close()


@contextmanager
def locked_database(job: str) -> Iterator[Database | None]:
    """The opened database under the job's lock; None (summary printed) when another run has it.

    Cron jobs must never overlap: the second run says so in its summary and exits 0.
    """
    with open_database(load_settings()) as db, job_lock(db, job) as acquired:
        if not acquired:
            summary(job, status="skipped", reason="another-run-holds-the-lock")
            yield None
        else:
            yield db


@contextmanager
def progress(length: int, label: str) -> Iterator[Any]:
    """A progress bar on a terminal; silent (for cron logs) when output is not a TTY."""
    if sys.stderr.isatty():
        with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
            yield bar
    else:
        yield _NoProgress()


class _NoProgress:
    def update(self, n_steps: int, current_item: Any = None) -> None:
        """Accept progress updates and show nothing."""


def summary(job: str, **counts: Any) -> None:
    """The one-line summary every job prints last (stable, grep-able ``key=value``)."""
    parts = " ".join(f"{key}={value}" for key, value in counts.items())
    click.echo(f"waymark {job}: {parts}".rstrip())


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Split ``items`` into lists of at most ``size``."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
