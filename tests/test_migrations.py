"""Migrations: ordered, recorded, idempotent, concurrent-safe, Supabase-compatible."""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backend import migrations

DESIGN_TABLES = {
    "user_activity_events", "user_sessions", "page_view_analytics",
    "learning_journey_events", "error_events", "error_groups", "tracking_salts",
    "privacy_audit", "guardian_links",
}


def schema_fingerprint(url: str) -> list[tuple[Any, ...]]:
    """Every column, index and policy in public: what a migration run could change."""
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema IN ('public', 'auth', 'waymark') "
            "ORDER BY 1, 2").fetchall()
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
        policies = conn.execute(
            "SELECT tablename, policyname FROM pg_policies ORDER BY 1, 2").fetchall()
        recorded = conn.execute(
            "SELECT version, checksum, applied_at FROM waymark.schema_migrations ORDER BY 1"
        ).fetchall()
    return [*columns, *indexes, *policies, *recorded]


def test_first_run_applies_all_in_order_and_records_them(empty_db_url: str) -> None:
    applied = migrations.migrate(empty_db_url)
    ordered = [m.name for m in migrations.discover()]
    repeatables = [r.name for r in migrations.discover_repeatables()]
    assert applied == ordered + repeatables  # the functions' current definitions come last
    assert ordered == sorted(ordered) and repeatables
    with psycopg.connect(empty_db_url) as conn:
        versions = [r[0] for r in conn.execute(
            "SELECT version FROM waymark.schema_migrations ORDER BY version")]
    assert versions == [m.version for m in migrations.discover()]


def test_second_run_changes_nothing(empty_db_url: str) -> None:
    migrations.migrate(empty_db_url)
    before = schema_fingerprint(empty_db_url)
    assert migrations.migrate(empty_db_url) == []
    assert migrations.pending(empty_db_url) == []
    assert schema_fingerprint(empty_db_url) == before


def test_concurrent_runs_do_not_fail(empty_db_url: str) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrations.migrate(empty_db_url))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    everything = ([m.name for m in migrations.discover()]
                  + [r.name for r in migrations.discover_repeatables()])
    assert sorted(results, key=len) == [[], [], everything]


def test_every_design_table_has_rls_enabled_and_forced(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')").fetchall()
    tables = {name: (enabled, forced) for name, enabled, forced in rows}
    assert DESIGN_TABLES <= set(tables)
    assert {name for name, flags in tables.items() if flags != (True, True)} == set()


def test_no_column_is_meant_for_raw_ip_or_user_agent(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public'").fetchall()
    suspicious = [
        (t, c) for t, c, dtype in rows
        if dtype == "inet" or c in {"ip", "ip_address", "client_ip", "remote_addr",
                                    "user_agent", "ua", "useragent", "user_agent_string"}
    ]
    assert suspicious == []


def test_design_indexes_exist(db_url: str) -> None:
    """DESIGN §3's index goals, on every partition of the events (the parent has none):
    time ranges (BRIN), per-user and per-type lookups, event_data containment, and the
    event_id that makes ingestion idempotent."""
    with psycopg.connect(db_url) as conn:
        parts = [r[0] for r in conn.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = 'public.user_activity_events'::regclass")]
        assert len(parts) >= 8  # weeks from a month back to two weeks ahead, and the default
        for part in parts:
            defs = [r[0] for r in conn.execute(
                "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass",
                (part,))]
            assert any("USING brin (occurred_at)" in d for d in defs), part
            assert any("btree (user_id) WHERE (user_id IS NOT NULL)" in d for d in defs), part
            assert any("btree (event_type)" in d for d in defs), part
            if part != "user_activity_events_default":  # navigation types left out
                assert any("btree (event_type) WHERE (event_type <> ALL (ARRAY['page_view'"
                           in d for d in defs), part
            assert any("gin (event_data jsonb_path_ops)" in d for d in defs), part
            assert any(d.startswith("CREATE UNIQUE INDEX") and d.endswith("btree (event_id)")
                       for d in defs), part


def test_a_per_type_lookup_uses_the_partial_type_index(db_url: str) -> None:
    """The type index leaves out page_view and page_exit, but the planner still proves that
    a lookup of any other type (or a list of them) is covered by it."""
    with psycopg.connect(db_url) as conn:
        conn.execute("SET enable_seqscan = off")  # an index scan if any index can serve
        conn.execute("SET enable_bitmapscan = off")  # (so not the BRIN)
        plans = {}
        for where in ("event_type = 'quest_completed'",
                      "event_type IN ('quest_started', 'badge_earned')", "event_type = 'page_view'"):
            rows = conn.execute("EXPLAIN SELECT count(*) FROM user_activity_events "  # noqa: S608
                                f"WHERE {where}")
            plans[where] = "\n".join(r[0] for r in rows)
        uses_type_index = re.compile(r"Scan using user_activity_events_p\d{8}_type on ")
        assert uses_type_index.search(plans["event_type = 'quest_completed'"])
        assert uses_type_index.search(plans["event_type IN ('quest_started', 'badge_earned')"])
        assert not uses_type_index.search(plans["event_type = 'page_view'"])


def test_auth_functions_read_request_claims(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)",
                      ('{"sub": "6f1c2c7e-7f57-4b7a-9d0b-1f6d2a3c4b5e", "role": "authenticated"}',))
        uid, role, jwt_sub = conn.execute(
            "SELECT auth.uid(), auth.role(), auth.jwt() ->> 'sub'").fetchone()  # type: ignore[misc]
    assert str(uid) == "6f1c2c7e-7f57-4b7a-9d0b-1f6d2a3c4b5e"
    assert role == "authenticated"
    assert jwt_sub == str(uid)


SUPABASE_AUTH_STANDIN = """
CREATE SCHEMA auth;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid $$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
  select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text $$;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
  select coalesce(nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), ''))::jsonb $$;
COMMENT ON FUNCTION auth.uid() IS 'supabase original';
CREATE TABLE auth.users (id uuid PRIMARY KEY);
"""


def test_runs_unchanged_on_a_supabase_like_auth_schema(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(SUPABASE_AUTH_STANDIN)
    applied = migrations.migrate(empty_db_url)
    assert applied == ([m.name for m in migrations.discover()]
                       + [r.name for r in migrations.discover_repeatables()])
    with psycopg.connect(empty_db_url) as conn:
        comment = conn.execute(
            "SELECT obj_description('auth.uid()'::regprocedure, 'pg_proc')").fetchone()
        users = conn.execute("SELECT to_regclass('auth.users') IS NOT NULL").fetchone()
    assert comment == ("supabase original",)  # Supabase's own function was left alone
    assert users == (True,)


def test_a_broken_migration_is_reported_and_not_recorded(empty_db_url: str, tmp_path: Any) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE public.ok_table (id int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE public.broken (id nosuchtype);")
    with pytest.raises(migrations.MigrationError, match="0002_broken"):
        migrations.migrate(empty_db_url, tmp_path)
    with psycopg.connect(empty_db_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM waymark.schema_migrations")]
        broken = conn.execute("SELECT to_regclass('public.broken')").fetchone()
    assert versions == ["0001"]
    assert broken == (None,)


def _function_defs(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute(
            "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid) FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'waymark'"
        ).fetchall())


def test_every_function_has_one_current_definition_and_the_database_has_it(
        db_url: str) -> None:
    defs = _function_defs(db_url)
    files = {r.name: r.sql for r in migrations.discover_repeatables()}
    assert sorted(f"functions/{name.split('(')[0]}" for name in defs) == sorted(files)
    for name, definition in defs.items():
        text = files[f"functions/{name.split('(')[0]}"]
        assert definition.strip() in text  # exactly what the file says, nothing older


def test_an_old_database_gets_the_repeatables_and_then_nothing_more(empty_db_url: str) -> None:
    """A database migrated before repeatable files existed (no schema_repeatables table)."""
    migrations.migrate(empty_db_url)
    current = _function_defs(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("DROP TABLE waymark.schema_repeatables")
        conn.execute("ALTER FUNCTION waymark.is_admin() PARALLEL UNSAFE")  # an older state
    assert migrations.pending(empty_db_url) == [
        r.name for r in migrations.discover_repeatables()]
    assert migrations.migrate(empty_db_url) == [r.name for r in migrations.discover_repeatables()]
    assert _function_defs(empty_db_url) == current
    assert migrations.migrate(empty_db_url) == []


def test_a_changed_repeatable_is_applied_again(empty_db_url: str, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(migrations.SQL_DIR, sql_dir)
    migrations.migrate(empty_db_url, sql_dir)
    path = sql_dir / "functions" / "waymark.scrub_text.sql"
    path.write_text(path.read_text().replace("-- waymark.scrub_text:", "-- waymark.scrub_text (edited):"))
    assert migrations.migrate(empty_db_url, sql_dir) == ["functions/waymark.scrub_text"]
    assert migrations.migrate(empty_db_url, sql_dir) == []


def test_stored_campaign_rows_lose_their_addresses_and_merge(
        conn: psycopg.Connection[Any]) -> None:
    """0142 on rows the old rollup stored: addresses scrubbed, rows that become one added up."""
    conn.execute("INSERT INTO campaign_daily (day, campaign, source, medium, visits, "
                 "unique_networks, conversions) VALUES "
                 "('2026-03-01', 'ann@example.org', 'mail', '(none)', 3, 2, 1), "
                 "('2026-03-01', 'bob@example.org', 'mail', '(none)', 4, 4, 0), "
                 "('2026-03-01', '[email]', 'mail', '(none)', 1, 1, 1), "
                 "('2026-03-01', 'spring', 'call +44 20 7946 0958', '(none)', 5, 5, 0)")
    conn.execute(next(m for m in migrations.discover() if m.version == "0142").sql)
    rows = conn.execute("SELECT campaign, source, visits, unique_networks, conversions "
                        "FROM campaign_daily ORDER BY campaign").fetchall()
    assert rows == [("[email]", "mail", 8, 7, 2), ("spring", "call [phone]", 5, 5, 0)]
