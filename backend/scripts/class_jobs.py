"""``waymark classes``: create classes and put teachers and students in them.

Memberships decide what a teacher may see (docs/access.md), so they are managed here
(or through the admin endpoints) on the service connection, never by users themselves.
Each subcommand prints a one-line summary; ``list`` and ``members`` print a table (or
JSON with ``--json``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import psycopg

from backend.scripts import runtime
from backend.services.roster import manage

T = TypeVar("T")


@contextmanager
def _service_connection() -> Iterator[psycopg.Connection[Any]]:
    with runtime.open_database(runtime.load_settings()) as db, db.connection() as conn:
        yield conn


def _run(work: Callable[[psycopg.Connection[Any]], T]) -> T:
    """Run one roster change; its errors become clear CLI errors (exit 1), not tracebacks."""
    try:
        with _service_connection() as conn:
            return work(conn)
    except manage.RosterError as exc:
        raise click.ClickException(str(exc)) from exc
    except manage.ClassNotFound as exc:
        raise click.ClickException(f"no class {exc.args[0]}; see `waymark classes list`") \
            from exc


@click.group()
def classes() -> None:
    """Manage classes and their teachers and students."""


@classes.command("create")
@click.argument("name")
def create(name: str) -> None:
    """Create a class called NAME and print its id."""
    created = _run(lambda conn: manage.create_class(conn, name))
    runtime.summary("classes create", class_id=created["class_id"],
                    name=json.dumps(created["name"]))


@classes.command("rename")
@click.argument("class_id", type=click.UUID)
@click.argument("name")
def rename(class_id: uuid.UUID, name: str) -> None:
    """Give the class CLASS_ID the name NAME."""
    renamed = _run(lambda conn: manage.rename_class(conn, class_id, name))
    runtime.summary("classes rename", class_id=class_id, name=json.dumps(renamed["name"]))


@classes.command("delete")
@click.argument("class_id", type=click.UUID)
def delete(class_id: uuid.UUID) -> None:
    """Delete a class and its memberships (its students' events stay)."""
    _run(lambda conn: manage.delete_class(conn, class_id))
    runtime.summary("classes delete", class_id=class_id)


@classes.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(as_json: bool) -> None:
    """Every class with its number of teachers and students."""
    rows = _run(manage.list_classes)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['class_id']}  {row['teacher_count']:>3} teachers  "
                   f"{row['student_count']:>4} students  {row['name']}")
    runtime.summary("classes list", classes=len(rows))


@classes.command("members")
@click.argument("class_id", type=click.UUID)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def members(class_id: uuid.UUID, as_json: bool) -> None:
    """The teachers and students of CLASS_ID."""
    rows = _run(lambda conn: manage.members(conn, class_id))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['user_id']}  {row['member_role']}")
    runtime.summary("classes members", class_id=class_id, members=len(rows))


@classes.command("add")
@click.argument("class_id", type=click.UUID)
@click.argument("user_ids", type=click.UUID, nargs=-1, required=True)
@click.option("--role", "role", type=click.Choice(manage.MEMBER_ROLES), default="student",
              show_default=True, help="Add them as teachers or as students.")
def add(class_id: uuid.UUID, user_ids: tuple[uuid.UUID, ...], role: str) -> None:
    """Add one or more users to CLASS_ID (adding someone twice changes nothing)."""

    def work(conn: psycopg.Connection[Any]) -> int:
        return sum(manage.add_member(conn, class_id, user, role) for user in user_ids)

    added = _run(work)
    runtime.summary("classes add", class_id=class_id, role=role, added=added,
                    unchanged=len(user_ids) - added)


@classes.command("remove")
@click.argument("class_id", type=click.UUID)
@click.argument("user_ids", type=click.UUID, nargs=-1, required=True)
@click.option("--role", "role", type=click.Choice(manage.MEMBER_ROLES), default=None,
              help="Remove only this role (default: every role).")
def remove(class_id: uuid.UUID, user_ids: tuple[uuid.UUID, ...], role: str | None) -> None:
    """Remove one or more users from CLASS_ID; a teacher loses access at once."""

    def work(conn: psycopg.Connection[Any]) -> int:
        return sum(bool(manage.remove_member(conn, class_id, user, role)) for user in user_ids)

    removed = _run(work)
    runtime.summary("classes remove", class_id=class_id, removed=removed,
                    not_members=len(user_ids) - removed)


COMMANDS: list[click.Command] = [classes]
