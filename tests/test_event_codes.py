"""sql/0060: event_category, source and device_type are enums with the old text labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

MIGRATION = Path(__file__).resolve().parent.parent / "sql" / "0060_event_codes_as_enums.sql"

INSERT = """
INSERT INTO public.user_activity_events (occurred_at, event_type, event_category, source,
                                         device_type)
VALUES (now(), 'quest_started', %s, %s, %s)
"""


def test_the_columns_are_enums_and_read_back_as_the_same_strings(
        conn: psycopg.Connection[Any]) -> None:
    types = dict(conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'public.user_activity_events'::regclass "
        "AND attname IN ('event_category', 'source', 'device_type')").fetchall())
    assert types == {"event_category": "event_category", "source": "event_source",
                     "device_type": "device_family"}
    conn.execute(INSERT, ("quest", "server", "mobile"))
    conn.execute("INSERT INTO public.user_activity_events (occurred_at, event_type) "
                 "VALUES (now(), 'page_view')")
    rows = conn.execute(
        "SELECT event_type FROM public.user_activity_events "
        "WHERE event_category = %s AND source = %s AND device_type = %s",
        ("quest", "server", "mobile")).fetchall()
    assert rows == [("quest_started",)]
    rows = conn.execute(
        "SELECT event_category, source, device_type FROM public.user_activity_events "
        "WHERE event_category = ANY (%s) ORDER BY event_type DESC",
        (["quest", "custom"],)).fetchall()
    assert rows == [("quest", "server", "mobile"), ("custom", "client", None)]


@pytest.mark.parametrize(("category", "source", "device"), [
    ("bogus", "client", "mobile"), ("quest", "robot", "mobile"), ("quest", "client", "fridge")])
def test_a_value_outside_the_lists_is_refused(conn: psycopg.Connection[Any], category: str,
                                              source: str, device: str) -> None:
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        conn.execute(INSERT, (category, source, device))


def test_running_the_migration_again_changes_nothing(conn: psycopg.Connection[Any]) -> None:
    conn.execute(INSERT, ("badge", "client", "desktop"))
    conn.execute(MIGRATION.read_text(encoding="utf-8"))
    assert conn.execute("SELECT event_category, source, device_type "
                        "FROM public.user_activity_events").fetchall() == [
        ("badge", "client", "desktop")]


def test_the_category_enum_lists_every_taxonomy_category(conn: psycopg.Connection[Any]) -> None:
    """A category added to the taxonomy needs ALTER TYPE … ADD VALUE in a migration."""
    from backend.taxonomy import CATEGORIES

    labels = [r[0] for r in conn.execute(
        "SELECT unnest(enum_range(NULL::public.event_category))::text").fetchall()]
    assert sorted(labels) == sorted(CATEGORIES)
