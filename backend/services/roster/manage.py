"""Create, rename and delete classes; add and remove teachers and students.

Plain functions on a service connection (the caller commits). Bad input raises
:class:`RosterError` with a message fit for a 4xx answer or a CLI error; a class that
does not exist raises :class:`ClassNotFound`.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, cast, get_args

import psycopg

from backend.db import fetch_all, fetch_one, unstorable
from backend.services.roster import QUERIES

MemberRole = Literal["teacher", "student"]
MEMBER_ROLES: tuple[str, ...] = get_args(MemberRole)
NAME_LENGTH = (1, 200)


class RosterError(ValueError):
    """A request the roster cannot honour (a bad name or role)."""


class ClassNotFound(LookupError):
    """No class has this id."""


def check_name(name: str) -> str:
    """A class name as stored: trimmed, 1–200 characters."""
    problem = unstorable(name)
    if problem is not None:
        raise RosterError(f"name: {problem}")
    cleaned = name.strip()
    if not NAME_LENGTH[0] <= len(cleaned) <= NAME_LENGTH[1]:
        raise RosterError(f"a class name has {NAME_LENGTH[0]} to {NAME_LENGTH[1]} characters")
    return cleaned


def check_role(role: str) -> MemberRole:
    """'teacher' or 'student'; anything else is refused by name."""
    if role not in MEMBER_ROLES:
        raise RosterError(f"member_role must be one of {', '.join(MEMBER_ROLES)}, not {role!r}")
    return cast(MemberRole, role)


def create_class(conn: psycopg.Connection[Any], name: str) -> dict[str, Any]:
    """A new class; its id is generated."""
    row = fetch_one(conn, QUERIES["create_class"], {"name": check_name(name)})
    assert row is not None  # INSERT … RETURNING always returns the row
    return _class(row)


def rename_class(conn: psycopg.Connection[Any], class_id: uuid.UUID, name: str) -> dict[str, Any]:
    """The class with its new name."""
    row = fetch_one(conn, QUERIES["rename_class"], {"class_id": class_id,
                                                     "name": check_name(name)})
    if row is None:
        raise ClassNotFound(class_id)
    return _class(row)


def delete_class(conn: psycopg.Connection[Any], class_id: uuid.UUID) -> None:
    """Remove a class and its memberships (the students' events stay)."""
    if fetch_one(conn, QUERIES["delete_class"], {"class_id": class_id}) is None:
        raise ClassNotFound(class_id)


def list_classes(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every class with its member counts."""
    return [{**_class(row), "student_count": int(row["student_count"]),
             "teacher_count": int(row["teacher_count"])}
            for row in fetch_all(conn, QUERIES["all_classes"])]


def members(conn: psycopg.Connection[Any], class_id: uuid.UUID) -> list[dict[str, Any]]:
    """The class's teachers, then its students."""
    _require_class(conn, class_id)
    return [{"user_id": str(row["user_id"]), "member_role": row["member_role"],
             "created_at": row["created_at"].isoformat()}
            for row in fetch_all(conn, QUERIES["class_members"], {"class_id": class_id})]


def add_member(conn: psycopg.Connection[Any], class_id: uuid.UUID, user_id: uuid.UUID,
               role: str) -> bool:
    """Add a teacher or student; False when they already were one (or were forgotten)."""
    member_role = check_role(role)
    _require_class(conn, class_id)
    row = fetch_one(conn, QUERIES["add_member"], {"class_id": class_id, "user_id": user_id,
                                                  "member_role": member_role})
    return row is not None


def remove_member(conn: psycopg.Connection[Any], class_id: uuid.UUID, user_id: uuid.UUID,
                  role: str | None = None) -> list[str]:
    """Remove someone from a class (in one role, or every role); the roles removed."""
    member_role = check_role(role) if role is not None else None
    _require_class(conn, class_id)
    rows = fetch_all(conn, QUERIES["remove_member"], {"class_id": class_id, "user_id": user_id,
                                                      "member_role": member_role})
    return sorted(row["member_role"] for row in rows)


def _require_class(conn: psycopg.Connection[Any], class_id: uuid.UUID) -> None:
    if fetch_one(conn, QUERIES["class_exists"], {"class_id": class_id}) is None:
        raise ClassNotFound(class_id)


def _class(row: dict[str, Any]) -> dict[str, Any]:
    return {"class_id": str(row["class_id"]), "name": row["name"],
            "created_at": row["created_at"].isoformat()}
