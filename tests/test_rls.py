"""Row-level security, enforced by PostgreSQL: every identity × operation × table.

The reads go through ``Database.as_user`` (the code path the API uses): a denied read is
an empty result where the role has a SELECT grant, 42501 where it has none; a denied
write is 42501. Nothing here mocks the database.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from conftest import AuthTokens, _scratch_database
from psycopg import sql
from psycopg.conninfo import make_conninfo

from backend.db import Database

A = uuid.UUID("aaaaaaaa-0000-4000-8000-000000000001")
B = uuid.UUID("bbbbbbbb-0000-4000-8000-000000000002")
PA = uuid.UUID("aaaaaaaa-0000-4000-8000-0000000000fa")
PB = uuid.UUID("bbbbbbbb-0000-4000-8000-0000000000fb")
ADMIN = uuid.UUID("adadadad-0000-4000-8000-0000000000ad")
ANON_SIGNIN = uuid.UUID("cccccccc-0000-4000-8000-00000000000c")
META = uuid.UUID("dddddddd-0000-4000-8000-00000000000d")
T1 = uuid.UUID("eeeeeeee-0000-4000-8000-0000000000e1")  # teaches class C1 (A's)
T2 = uuid.UUID("eeeeeeee-0000-4000-8000-0000000000e2")  # teaches class C2 (B's)
META_T = uuid.UUID("dddddddd-0000-4000-8000-0000000000de")
C1 = uuid.UUID("c1c1c1c1-0000-4000-8000-0000000000c1")
C2 = uuid.UUID("c2c2c2c2-0000-4000-8000-0000000000c2")
NOBODY = None  # rows with no user (visitors, anonymized rows)

USER_TABLES = ("user_activity_events", "user_sessions", "learning_journey_events",
               "error_events")
ADMIN_TABLES = ("page_view_analytics", "error_groups")
HIDDEN_TABLES = ("tracking_salts", "privacy_audit")
CLASS_TABLES = ("classes", "class_memberships")
#: rows about students A and B (interventions, crossings) and alerts to T1, PA, PB
ALERT_TABLES = ("interventions", "alert_crossings", "alert_deliveries", "digest_deliveries")
ALL_TABLES = (*USER_TABLES, *ADMIN_TABLES, "guardian_links", *CLASS_TABLES, *HIDDEN_TABLES,
              *ALERT_TABLES)
OWNERS: tuple[uuid.UUID | None, ...] = (A, B, PA, PB, ADMIN, ANON_SIGNIN, META, T1, T2, META_T,
                                        NOBODY)
LINKS = {(PA, A), (PB, B)}
#: (class, user, member_role)
MEMBERSHIPS = {(C1, A, "student"), (C1, T1, "teacher"), (C2, B, "student"), (C2, T2, "teacher")}
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

_tokens = AuthTokens()


def _claims(user: uuid.UUID, role: str | None, **extra: Any) -> dict[str, Any]:
    return _tokens.claims(user, role, **extra)


#: identity name → (claims for as_user, or None for anon; what each table shows them)
IDENTITIES: dict[str, dict[str, Any] | None] = {
    "anon": None,
    "student A": _claims(A, "student"),
    "student B": _claims(B, None),
    "parent of A": _claims(PA, "parent"),
    "parent of B": _claims(PB, "parent"),
    "admin": _claims(ADMIN, "admin"),
    "anonymous sign-in": _claims(ANON_SIGNIN, None, is_anonymous=True),
    "student with user_metadata.role admin": _claims(META, None,
                                                     user_metadata={"role": "admin"}),
    "teacher of A's class": _claims(T1, "teacher"),
    "teacher of another class": _claims(T2, "teacher"),
    "student with user_metadata.role teacher": _claims(META_T, None,
                                                       user_metadata={"role": "teacher"}),
}


def expected_rows(identity: str, table: str) -> set[Any] | None:
    """What ``identity`` should read from ``table``: a set of row keys, or None for 42501."""
    claims = IDENTITIES[identity]
    if claims is None or table in HIDDEN_TABLES:
        return None
    me = uuid.UUID(claims["sub"])
    admin = identity == "admin"
    role = claims.get("app_metadata", {}).get("role", "student")
    if claims.get("is_anonymous"):
        role = "student"
    children = {s for p, s in LINKS if p == me} if role == "parent" else set()
    taught = {c for c, u, r in MEMBERSHIPS if u == me and r == "teacher"}
    class_students = {u for c, u, r in MEMBERSHIPS if c in taught and r == "student"}
    if table in USER_TABLES:
        return set(OWNERS) if admin else {me} | children | class_students
    if table in ("interventions", "alert_crossings"):
        return {A, B} if admin else ({me} | children | class_students) & {A, B}
    if table == "alert_deliveries":
        return {T1, PA, PB} if admin else {me} & {T1, PA, PB}
    if table == "digest_deliveries":
        return {T1, PA} if admin else {me} & {T1, PA}
    if table in ADMIN_TABLES:
        return {"row"} if admin else set()
    if table == "classes":
        attended = {c for c, u, r in MEMBERSHIPS if r == "student" and (u == me or u in children)}
        return {C1, C2} if admin else taught | attended
    if table == "class_memberships":
        return set(MEMBERSHIPS) if admin else {m for m in MEMBERSHIPS if m[0] in taught
                                               or m[1] == me or m[1] in children}
    assert table == "guardian_links"
    return set(LINKS) if admin else {link for link in LINKS if me in link}


SEED = """
INSERT INTO guardian_links (parent_id, student_id) VALUES (%(pa)s, %(a)s), (%(pb)s, %(b)s);
INSERT INTO error_groups (fingerprint, error_type, first_seen, last_seen)
    VALUES ('fp', 'javascript_error', %(now)s, %(now)s);
INSERT INTO page_view_analytics (day, page_path, total_views) VALUES (%(now)s::date, '/', 3);
INSERT INTO tracking_salts (period_start, salt) VALUES (%(now)s, decode(repeat('ab', 32), 'hex'));
INSERT INTO privacy_audit (action, details) VALUES ('purge', '{"rows": 0}');
INSERT INTO classes (class_id, name) VALUES (%(c1)s, 'Year 7 maths'), (%(c2)s, 'Year 8 art');
INSERT INTO class_memberships (class_id, user_id, member_role)
    VALUES (%(c1)s, %(a)s, 'student'), (%(c1)s, %(t1)s, 'teacher'),
           (%(c2)s, %(b)s, 'student'), (%(c2)s, %(t2)s, 'teacher');
INSERT INTO interventions (student_id, actor_id, actor_role, action, note)
    VALUES (%(a)s, %(t1)s, 'teacher', 'contacted', 'n'), (%(b)s, %(admin)s, 'admin', 'resolved', 'n');
INSERT INTO alert_crossings (crossing_id, student_id, direction, assessed_on, risk_score, threshold)
    VALUES (%(c1)s, %(a)s, 'entered', %(now)s::date, 0.9, 0.8),
           (%(c2)s, %(b)s, 'entered', %(now)s::date, 0.9, 0.8);
INSERT INTO alert_deliveries (crossing_id, channel, recipient_id, recipient_role)
    VALUES (%(c1)s, 'email', %(t1)s, 'teacher'), (%(c1)s, 'email', %(pa)s, 'parent'),
           (%(c2)s, 'email', %(pb)s, 'parent');
INSERT INTO digest_deliveries (recipient_id, recipient_role, week_start)
    VALUES (%(t1)s, 'teacher', %(now)s::date), (%(pa)s, 'parent', %(now)s::date);
"""
SEED_PER_OWNER = """
INSERT INTO user_activity_events (occurred_at, user_id, event_type)
    VALUES (%(now)s, %(u)s, 'page_view');
INSERT INTO user_sessions (user_id, started_at, last_seen_at) VALUES (%(u)s, %(now)s, %(now)s);
INSERT INTO learning_journey_events (user_id, occurred_at, milestone)
    VALUES (%(u)s, %(now)s, 'quest_completed');
INSERT INTO error_events (occurred_at, user_id, error_type, fingerprint)
    VALUES (%(now)s, %(u)s, 'javascript_error', 'fp');
"""
ROW_KEY = {
    "guardian_links": "SELECT parent_id, student_id FROM guardian_links",
    "page_view_analytics": "SELECT 'row' FROM page_view_analytics",
    "error_groups": "SELECT 'row' FROM error_groups",
    "tracking_salts": "SELECT 'row' FROM tracking_salts",
    "privacy_audit": "SELECT 'row' FROM privacy_audit",
    "classes": "SELECT class_id FROM classes",
    "class_memberships": "SELECT class_id, user_id, member_role FROM class_memberships",
    "interventions": "SELECT student_id FROM interventions",
    "alert_crossings": "SELECT student_id FROM alert_crossings",
    "alert_deliveries": "SELECT recipient_id FROM alert_deliveries",
    "digest_deliveries": "SELECT recipient_id FROM digest_deliveries",
}
#: One write of each kind per table; the UPDATE/DELETE target every row.
WRITES = {
    "INSERT": "INSERT INTO {table} DEFAULT VALUES",
    "UPDATE": "UPDATE {table} SET {column} = {column}",
    "DELETE": "DELETE FROM {table}",
}
SOME_COLUMN = {
    "user_activity_events": "page_path", "user_sessions": "page_count",
    "learning_journey_events": "details", "error_events": "message",
    "page_view_analytics": "total_views", "error_groups": "status",
    "guardian_links": "created_at", "tracking_salts": "created_at",
    "privacy_audit": "details", "classes": "name", "class_memberships": "created_at",
    "interventions": "note", "alert_crossings": "factors", "alert_deliveries": "status",
    "digest_deliveries": "status",
}


def _run(conn: psycopg.Connection[Any], script: str, params: dict[str, Any]) -> None:
    """Run a ;-separated script statement by statement (bound parameters need that)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement, {k: v for k, v in params.items()
                                     if f"%({k})s" in statement})


class Rollback(Exception):
    """Raised inside ``as_user`` so that a block's writes are never committed."""


@pytest.fixture(scope="module")
def seeded_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """One migrated database with rows for every owner, shared by the read-only matrix."""
    for url in _scratch_database(pg_server_url, template=template_db):
        with psycopg.connect(url, autocommit=True) as conn:
            _run(conn, SEED, {"a": A, "b": B, "pa": PA, "pb": PB, "now": NOW,
                              "c1": C1, "c2": C2, "t1": T1, "t2": T2, "admin": ADMIN})
            for owner in OWNERS:
                _run(conn, SEED_PER_OWNER, {"u": owner, "now": NOW})
        yield url


@pytest.fixture(scope="module")
def db(seeded_url: str) -> Iterator[Database]:
    database = Database(seeded_url, min_size=1, max_size=2)
    database.open(wait=True)
    yield database
    database.close()


def read(db: Database, claims: dict[str, Any] | None, table: str) -> set[Any]:
    """The row keys ``claims`` can read from ``table`` through the API's read path."""
    query = ROW_KEY.get(table, f"SELECT user_id FROM {table}")  # noqa: S608 - fixed names
    with db.as_user(claims) as conn:
        rows = conn.execute(query).fetchall()
    return {row[0] if len(row) == 1 else tuple(row) for row in rows}


def write(db: Database, claims: dict[str, Any] | None, table: str, operation: str) -> int:
    """Try one write as ``claims``; returns the rows affected (always rolled back)."""
    statement = WRITES[operation].format(table=table, column=SOME_COLUMN[table])
    affected = -1
    try:
        with db.as_user(claims) as conn:
            affected = conn.execute(statement).rowcount
            raise Rollback
    except Rollback:
        pass
    return affected


@pytest.mark.parametrize("table", ALL_TABLES)
@pytest.mark.parametrize("identity", list(IDENTITIES))
def test_matrix(db: Database, identity: str, table: str) -> None:
    claims = IDENTITIES[identity]
    expected = expected_rows(identity, table)
    if expected is None:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            read(db, claims, table)
    else:
        assert read(db, claims, table) == expected
    for operation in WRITES:
        try:
            outcome = f"{write(db, claims, table, operation)} rows {operation.lower()}d"
        except psycopg.errors.InsufficientPrivilege:
            outcome = "42501"
        assert outcome == "42501", f"{operation} as {identity} on {table}: {outcome}"


def test_the_matrix_data_is_there_for_the_service_connection(db: Database) -> None:
    """The denials above are RLS and grants, not an empty database."""
    for table in ALL_TABLES:
        row = db.fetch_one(f"SELECT count(*) AS n FROM {table}")  # noqa: S608 - fixed names
        assert row is not None and row["n"] >= 1, table


def test_unlinked_parent_and_user_metadata_grant_nothing(db: Database) -> None:
    lonely_parent = _claims(uuid.uuid4(), "parent")
    assert read(db, lonely_parent, "user_activity_events") == set()
    assert read(db, lonely_parent, "guardian_links") == set()
    # a student listed as someone's parent in guardian_links but without the parent role
    wrong_role = _claims(PA, "student")
    assert read(db, wrong_role, "user_activity_events") == {PA}


def test_token_roles_other_than_authenticated_grant_nothing(db: Database) -> None:
    forged = {**_claims(ADMIN, "admin"), "role": "service_role"}
    assert read(db, forged, "user_activity_events") == {ADMIN}  # own rows, no admin powers
    assert read(db, forged, "page_view_analytics") == set()


# ------------------------------------------------- writes refused by RLS itself


def test_rls_refuses_writes_even_if_someone_grants_them(db_url: str) -> None:
    """Defence in depth: with write grants added by mistake, RLS still refuses (no policy)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        _run(conn, SEED_PER_OWNER, {"u": A, "now": NOW})
        conn.execute("GRANT INSERT, UPDATE, DELETE ON user_activity_events TO authenticated")
    database = Database(db_url, min_size=0, max_size=1)
    database.open(wait=True)
    try:
        claims = _claims(A, "admin")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            with database.as_user(claims) as conn:
                conn.execute("INSERT INTO user_activity_events (occurred_at, user_id, event_type)"
                             " VALUES (now(), %s, 'page_view')", (A,))
        assert write(database, claims, "user_activity_events", "UPDATE") == 0
        assert write(database, claims, "user_activity_events", "DELETE") == 0
        assert database.fetch_one("SELECT count(*) AS n FROM user_activity_events") == {"n": 1}
    finally:
        database.close()


# --------------------------------------------------------- pooled connections


def test_identity_does_not_outlive_its_transaction_on_a_pooled_connection(db: Database,
                                                                          seeded_url: str) -> None:
    single = Database(seeded_url, min_size=1, max_size=1)
    single.open(wait=True)
    try:
        with single.as_user(IDENTITIES["student A"]) as conn:
            first_pid = conn.info.backend_pid
            assert {r[0] for r in conn.execute("SELECT user_id FROM user_activity_events")} == {A}
        # the same connection, next request with no identity: sees none of A's rows
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with single.as_user(None) as conn:
                assert conn.info.backend_pid == first_pid
                conn.execute("SELECT user_id FROM user_activity_events")
        with single.connection() as conn:
            assert conn.info.backend_pid == first_pid
            row = conn.execute("SELECT current_user = session_user, "
                               "coalesce(current_setting('request.jwt.claims', true), ''), "
                               "auth.uid()").fetchone()
            assert row == (True, "", None)
            # a query that sets only the role (a bug elsewhere) still gets nothing of A's
            with conn.transaction():
                conn.execute("SET LOCAL ROLE authenticated")
                assert conn.execute("SELECT count(*) FROM user_activity_events").fetchone() == (0,)
        with single.as_user(IDENTITIES["student B"]) as conn:
            assert conn.info.backend_pid == first_pid
            assert {r[0] for r in conn.execute("SELECT user_id FROM user_activity_events")} == {B}
    finally:
        single.close()


def test_an_error_inside_as_user_leaves_the_connection_clean(seeded_url: str) -> None:
    single = Database(seeded_url, min_size=1, max_size=1)
    single.open(wait=True)
    try:
        with pytest.raises(psycopg.errors.DivisionByZero):
            with single.as_user(IDENTITIES["admin"]) as conn:
                conn.execute("SELECT 1/0")
        with single.connection() as conn:
            assert conn.execute("SELECT auth.uid(), current_user = session_user").fetchone() == (
                None, True)
    finally:
        single.close()


# -------------------------------------------------- the service role's bypass


def test_service_roles_bypass_never_applies_to_reads_as_a_user(seeded_url: str,
                                                               db: Database) -> None:
    """Superuser or non-superuser BYPASSRLS owner: as_user still returns only A's rows."""
    name = f"wm_svc_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(seeded_url, autocommit=True) as admin_conn:
        admin_conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER BYPASSRLS").format(
            sql.Identifier(name)))
        admin_conn.execute(sql.SQL("GRANT anon, authenticated TO {}").format(sql.Identifier(name)))
        admin_conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
            sql.Identifier(name)))
    service = Database(make_conninfo(seeded_url, user=name), min_size=0, max_size=1)
    try:
        service.open(wait=True)
        for database in (service, db):  # a BYPASSRLS owner, then the superuser
            everyone = database.fetch_all("SELECT user_id FROM user_activity_events")
            assert {r["user_id"] for r in everyone} == set(OWNERS)
            assert read(database, IDENTITIES["student A"], "user_activity_events") == {A}
            assert read(database, IDENTITIES["student A"], "page_view_analytics") == set()
    finally:
        service.close()
        with psycopg.connect(seeded_url, autocommit=True) as admin_conn:
            admin_conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            admin_conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


# ------------------------------------------------------------ the catalogue


API_ROLES = ("anon", "authenticated")


def test_every_table_has_rls_enabled_and_forced(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute("""
        SELECT n.nspname || '.' || c.relname, c.relrowsecurity, c.relforcerowsecurity
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')""").fetchall()
    assert {r[0] for r in rows} >= {f"public.{t}" for t in ALL_TABLES}
    assert [r[0] for r in rows if not (r[1] and r[2])] == []


def test_api_roles_cannot_write_anything_and_anon_cannot_read(
        conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute("""
        SELECT n.nspname || '.' || c.relname, r.rolname, p.privilege
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        CROSS JOIN (VALUES ('anon'), ('authenticated')) AS r(rolname)
        CROSS JOIN (VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'),
                           ('REFERENCES'), ('TRIGGER')) AS p(privilege)
        WHERE n.nspname IN ('public', 'waymark') AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND has_table_privilege(r.rolname, c.oid, p.privilege)""").fetchall()
    # SELECT for authenticated, and only on tables whose RLS policies decide the rows
    policed = {f"public.{r[0]}" for r in conn.execute(
        "SELECT tablename FROM pg_policies WHERE schemaname = 'public' AND cmd = 'SELECT'")}
    assert policed >= {f"public.{t}" for t in (*USER_TABLES, *ADMIN_TABLES, "guardian_links")}
    allowed = {(table, "authenticated", "SELECT") for table in policed}
    # the one write an API role has: recording an intervention as themself (its policy
    # checks whom about; tests/routes/test_interventions_routes.py per role)
    allowed.add(("public.interventions", "authenticated", "INSERT"))
    assert set(rows) - allowed == set()


def test_no_view_or_function_bypasses_rls(conn: psycopg.Connection[Any]) -> None:
    views = conn.execute("""
        SELECT n.nspname || '.' || c.relname, c.relkind, c.reloptions
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.relkind IN ('v', 'm')
          AND (has_table_privilege('anon', c.oid, 'SELECT')
               OR has_table_privilege('authenticated', c.oid, 'SELECT'))""").fetchall()
    # a materialized view has no RLS at all, a view must run as its invoker
    leaks = [v for v in views if v[1] == "m"
             or not any(o in ("security_invoker=true", "security_invoker=on")
                        for o in (v[2] or []))]
    assert leaks == []
    definers = conn.execute("""
        SELECT p.oid::regprocedure::text
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prosecdef
          AND (has_function_privilege('anon', p.oid, 'EXECUTE')
               OR has_function_privilege('authenticated', p.oid, 'EXECUTE'))""").fetchall()
    # only the RLS helpers run with their owner's rights, and they only read the caller's
    # own role and guardian links
    assert {d[0] for d in definers} == {f"waymark.{name}" for name in (
        "app_role()", "is_admin()", "is_guardian_of(uuid)", "linked_students()",
        "visible_students()", "visible_classes()", "taught_classes()")}


HELPERS = ("app_role", "is_admin", "is_guardian_of", "linked_students", "visible_students",
           "visible_classes", "taught_classes")


def test_helpers_are_security_definer_with_an_empty_search_path(
        conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute("""
        SELECT p.proname, p.prosecdef, p.proconfig, n.nspname,
               has_function_privilege('anon', p.oid, 'EXECUTE')
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.proname = ANY (%s)""", (list(HELPERS),)).fetchall()
    assert {r[0] for r in rows} == set(HELPERS)
    for name, definer, config, schema, anon_may in rows:
        assert (schema, definer, anon_may) == ("waymark", True, False), name
        assert config is not None and any(re.fullmatch(r'search_path=("")?', c) for c in config)


def test_policies_evaluate_auth_uid_once(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute("SELECT tablename, policyname, roles::text[], cmd, "
                        "coalesce(qual, with_check) "
                        "FROM pg_policies WHERE schemaname = 'public'").fetchall()
    assert {r[0] for r in rows} >= {*USER_TABLES, *ADMIN_TABLES, "guardian_links"}
    for table, name, roles, cmd, qual in rows:
        allowed_cmds = ("SELECT", "INSERT") if table == "interventions" else ("SELECT",)
        assert roles == ["authenticated"] and cmd in allowed_cmds, name
        bare = re.sub(r"\(\s*SELECT (auth\.uid|waymark\.\w+)\(\)[^)]*\)", "", qual)
        assert "auth.uid()" not in bare and "waymark." not in bare, (table, qual)


#: Tables without personal data that every signed-in role reads: the risk parameter sets
#: (migration 0140), which at-risk and engagement answers name (id, fitted_at, AUC).
EVERYONE_READS = frozenset({"risk_parameter_sets"})
#: Aggregates over at least 5 students that a signed-in role reads for the classes it may
#: see (an admin: every class), plus the population's row: the cohort medians of the risk
#: score (migrations 0141, 0143).
CLASS_AGGREGATES = {"risk_cohort_medians": (
    "((class_id IS NULL) OR ( SELECT waymark.is_admin() AS is_admin) OR (class_id = ANY "
    "(( SELECT waymark.visible_classes() AS visible_classes)::uuid[])))")}


def test_tables_outside_the_matrix_are_admin_only(conn: psycopg.Connection[Any]) -> None:
    """Tables added by later migrations (rollups…) hold aggregates: admins only, until a
    test here says otherwise. Their policies must be exactly ``(select waymark.is_admin())``."""
    rows = conn.execute("""
        SELECT c.relname, p.polname, pg_get_expr(p.polqual, p.polrelid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_policy p ON p.polrelid = c.oid
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
          AND has_table_privilege('authenticated', c.oid, 'SELECT')
          AND NOT c.relname = ANY (%s)""", (list(ALL_TABLES),)).fetchall()
    for table, policy, qual in rows:
        assert policy is not None, f"{table} is readable but has no policy"
        if table in EVERYONE_READS:
            assert qual == "true", (table, policy, qual)
            continue
        if table in CLASS_AGGREGATES:
            assert qual == CLASS_AGGREGATES[table], (table, policy, qual)
            continue
        assert re.fullmatch(r"\(\s*SELECT waymark\.is_admin\(\) AS is_admin\)", qual), (
            table, policy, qual)


def test_authenticated_cannot_bypass_rls(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute("SELECT rolsuper, rolbypassrls FROM pg_roles "
                       "WHERE rolname = 'authenticated'").fetchone()
    assert row == (False, False)


# ------------------------------------------------------------------- the plan

#: The student's "my last 30 days" query (also measured by bench/rls_query.py).
MY_LAST_30_DAYS = """
SELECT event_category, count(*) AS events
FROM public.user_activity_events
WHERE user_id = %(user_id)s AND occurred_at >= %(since)s
GROUP BY event_category
ORDER BY event_category
"""


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _event_scans(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scans of the events' partitions (the parent is never scanned itself)."""
    return [n for n in nodes if str(n.get("Relation Name", "")).startswith("user_activity_events_")]


def _uses_user_index(nodes: list[dict[str, Any]]) -> bool:
    """Some partition was read through its user_id index (waymark.prepare_event_partition)."""
    return any(str(n.get("Index Name", "")).startswith("user_activity_events_")
               and str(n.get("Index Name")).endswith("_user") for n in nodes)


def test_student_query_plan_uses_initplan_and_the_user_time_index(
        conn: psycopg.Connection[Any]) -> None:
    conn.execute("""
        INSERT INTO user_activity_events (occurred_at, user_id, event_type)
        SELECT %(now)s - (i %% 60) * interval '1 day',
               ('00000000-0000-4000-8000-' || lpad((i %% 50)::text, 12, '0'))::uuid,
               'page_view'
        FROM generate_series(1, 5000) i""", {"now": NOW})
    conn.execute("ANALYZE user_activity_events")
    me = uuid.UUID("00000000-0000-4000-8000-000000000007")
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)",
                     (json.dumps(_claims(me, "student")),))
        conn.execute("SET LOCAL ROLE authenticated")
        explain = conn.execute(
            "EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) " + MY_LAST_30_DAYS,
            {"user_id": me, "since": NOW - timedelta(days=30)}).fetchone()
    assert explain is not None
    nodes = list(_nodes(explain[0][0]["Plan"]))
    uid_initplans = [n for n in nodes if n.get("Parent Relationship") == "InitPlan"
                     and _reads_uid(n)]
    assert len(uid_initplans) == 1
    assert uid_initplans[0]["Actual Loops"] == 1
    assert _uses_user_index(nodes)
    scans = _event_scans(nodes)
    assert scans and all(n["Node Type"] != "Seq Scan" for n in scans)
    expected = conn.execute("SELECT count(*) FROM user_activity_events WHERE user_id = %s "
                            "AND occurred_at >= %s", (me, NOW - timedelta(days=30))).fetchone()
    assert expected is not None and expected[0] > 0
    heap = [n for n in scans if n["Node Type"] != "Bitmap Index Scan"]
    assert sum(n["Actual Rows"] for n in heap) == expected[0]


def _reads_uid(node: dict[str, Any]) -> bool:
    """Whether a plan node computes auth.uid() (PostgreSQL inlines it to current_setting)."""
    output = " ".join(node.get("Output", []))
    return "auth.uid()" in output or "request.jwt.claim" in output and "sub" in output



@pytest.mark.parametrize(("claims", "role"), [
    (None, None),
    ({"role": "anon"}, None),
    (_claims(A, None), "student"),
    (_claims(A, "parent"), "parent"),
    (_claims(A, "admin"), "admin"),
    (_claims(A, "teacher"), "teacher"),
    (_claims(A, "teacher", is_anonymous=True), "student"),
    (_claims(A, "principal"), None),
    (_claims(A, None, user_metadata={"role": "admin"}), "student"),
    (_claims(A, "admin", is_anonymous=True), "student"),
    ({**_claims(A, "admin"), "role": "service_role"}, None),
    ({k: v for k, v in _claims(A, "admin").items() if k != "sub"}, None),
])
def test_app_role_in_the_database(db: Database, claims: dict[str, Any] | None,
                                  role: str | None) -> None:
    with db.connection() as conn, conn.transaction():
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)",
                     (json.dumps(claims) if claims else "",))
        conn.execute("SET LOCAL ROLE authenticated")
        row = conn.execute("SELECT waymark.app_role(), waymark.is_admin(), "
                           "waymark.is_guardian_of(%s), waymark.linked_students()",
                           (A,)).fetchone()
    assert row == (role, role == "admin", False, [])


def test_is_guardian_of_in_the_database(db: Database) -> None:
    for claims, expected in ((_claims(PA, "parent"), (True, False, [A])),
                             (_claims(PA, "student"), (False, False, [])),
                             (_claims(PB, "parent"), (False, True, [B]))):
        with db.as_user(claims) as conn:
            row = conn.execute("SELECT waymark.is_guardian_of(%s), waymark.is_guardian_of(%s), "
                               "waymark.linked_students()", (A, B)).fetchone()
        assert row == expected


def test_migrations_and_rls_work_for_a_non_superuser_owner(pg_server_url: str,
                                                            template_db: str) -> None:
    """docs/access.md's plain-PostgreSQL setup: an owner with BYPASSRLS, not a superuser."""
    import os

    from backend import migrations

    tag = uuid.uuid4().hex[:8]
    role, dbname = f"wm_owner_{tag}", f"wmtest_db_{os.getpid()}_owner_{tag}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin_conn:
        admin_conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEROLE BYPASSRLS")
                           .format(sql.Identifier(role)))
        admin_conn.execute(sql.SQL("GRANT anon, authenticated TO {}").format(sql.Identifier(role)))
        admin_conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(dbname), sql.Identifier(role)))
    url = make_conninfo(pg_server_url, dbname=dbname, user=role)
    owner = Database(url, min_size=0, max_size=1)
    try:
        migrations.migrate(url)
        owner.open(wait=True)
        with owner.connection() as conn:
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                                ).fetchone() == (False,)
            conn.execute("INSERT INTO guardian_links (parent_id, student_id) VALUES (%s, %s)",
                         (PA, A))
            for user in (A, B, PA):
                _run(conn, SEED_PER_OWNER, {"u": user, "now": NOW})
        assert {r["user_id"] for r in owner.fetch_all(
            "SELECT user_id FROM user_activity_events")} == {A, B, PA}
        assert read(owner, IDENTITIES["student A"], "user_activity_events") == {A}
        assert read(owner, IDENTITIES["parent of A"], "user_sessions") == {PA, A}
        assert read(owner, IDENTITIES["student B"], "page_view_analytics") == set()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            write(owner, IDENTITIES["admin"], "user_activity_events", "DELETE")
    finally:
        owner.close()
        with psycopg.connect(pg_server_url, autocommit=True) as admin_conn:
            admin_conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(dbname)))
            admin_conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.parametrize("identity", ["admin", "parent of A", "student B"])
def test_queries_under_rls_can_run_in_parallel(db: Database, identity: str) -> None:
    """Admins' scans over all events use every core; helpers work inside parallel workers."""
    with db.as_user(IDENTITIES[identity]) as conn:
        for setting in ("parallel_setup_cost", "parallel_tuple_cost",
                        "min_parallel_table_scan_size"):
            conn.execute(sql.SQL("SET LOCAL {} = 0").format(sql.Identifier(setting)))
        conn.execute("SET LOCAL enable_indexscan = off")
        conn.execute("SET LOCAL enable_bitmapscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN (ANALYZE, COSTS OFF) SELECT user_id FROM user_activity_events"))
        rows = {r[0] for r in conn.execute("SELECT user_id FROM user_activity_events")}
    assert "Gather" in plan and "Workers Launched" in plan, plan
    assert rows == expected_rows(identity, "user_activity_events")


# ------------------------------------------------------------ teachers and classes


@pytest.mark.parametrize(("identity", "students", "classes", "taught"), [
    ("student A", [A], [C1], []),
    ("parent of A", [A], [C1], []),
    ("teacher of A's class", [A], [C1], [C1]),
    ("teacher of another class", [B], [C2], [C2]),
    ("admin", [], [], []),  # policies test is_admin() instead of listing everyone
    ("student with user_metadata.role teacher", [META_T], [], []),
    ("anon", [], [], []),
])
def test_visible_students_in_the_database(db: Database, identity: str, students: list[Any],
                                          classes: list[Any], taught: list[Any]) -> None:
    with db.connection() as conn, conn.transaction():
        claims = IDENTITIES[identity]
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)",
                     (json.dumps(claims) if claims else "",))
        conn.execute("SET LOCAL ROLE authenticated")
        row = conn.execute("SELECT waymark.visible_students(), waymark.visible_classes(), "
                           "waymark.taught_classes()").fetchone()
    assert row == (students, classes, taught)


def test_a_teacher_removed_from_a_class_loses_access_at_once(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        _run(conn, SEED, {"a": A, "b": B, "pa": PA, "pb": PB, "now": NOW,
                          "c1": C1, "c2": C2, "t1": T1, "t2": T2, "admin": ADMIN})
        for owner in (A, B, T1):
            _run(conn, SEED_PER_OWNER, {"u": owner, "now": NOW})
    database = Database(db_url, min_size=1, max_size=1)
    database.open(wait=True)
    teacher = IDENTITIES["teacher of A's class"]
    try:
        # one pooled connection throughout: nothing may be cached per session
        assert read(database, teacher, "user_activity_events") == {T1, A}
        assert read(database, teacher, "classes") == {C1}
        database.execute("DELETE FROM class_memberships WHERE class_id = %(c)s AND "
                         "user_id = %(t)s", {"c": C1, "t": T1})
        for table in USER_TABLES:
            assert read(database, teacher, table) == {T1}, table
        assert read(database, teacher, "classes") == set()
        assert read(database, teacher, "class_memberships") == set()
        # and back: re-adding restores access just as fast
        database.execute("INSERT INTO class_memberships (class_id, user_id, member_role) "
                         "VALUES (%(c)s, %(t)s, 'teacher')", {"c": C1, "t": T1})
        assert read(database, teacher, "learning_journey_events") == {T1, A}
        # a student moved out of the class disappears from the teacher's view too
        database.execute("DELETE FROM class_memberships WHERE class_id = %(c)s AND "
                         "user_id = %(a)s", {"c": C1, "a": A})
        assert read(database, teacher, "error_events") == {T1}
    finally:
        database.close()


#: A teacher's class query: the class's events by category over 30 days (also measured by
#: bench/rls_query.py against the same query as admin).
CLASS_LAST_30_DAYS = """
SELECT event_category, count(*) AS events
FROM public.user_activity_events
WHERE user_id IN (SELECT m.user_id FROM public.class_memberships m
                  WHERE m.class_id = %(class_id)s AND m.member_role = 'student')
  AND occurred_at >= %(since)s
GROUP BY event_category
ORDER BY event_category
"""


def test_teacher_class_query_plan_uses_initplans_and_indexes(
        conn: psycopg.Connection[Any]) -> None:
    teacher = uuid.UUID("eeeeeeee-0000-4000-8000-000000000099")
    klass = uuid.UUID("c3c3c3c3-0000-4000-8000-0000000000c3")
    conn.execute("""
        INSERT INTO user_activity_events (occurred_at, user_id, event_type)
        SELECT %(now)s - (i %% 60) * interval '1 day',
               ('00000000-0000-4000-8000-' || lpad((i %% 200)::text, 12, '0'))::uuid,
               'page_view'
        FROM generate_series(1, 20000) i""", {"now": NOW})
    conn.execute("INSERT INTO classes (class_id, name) VALUES (%s, 'Year 9')", (klass,))
    conn.execute("""
        INSERT INTO class_memberships (class_id, user_id, member_role)
        SELECT %(c)s, ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'student'
        FROM generate_series(0, 24) i
        UNION ALL SELECT %(c)s, %(t)s, 'teacher'""", {"c": klass, "t": teacher})
    conn.execute("ANALYZE user_activity_events")
    conn.execute("ANALYZE class_memberships")
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)",
                     (json.dumps(_claims(teacher, "teacher")),))
        conn.execute("SET LOCAL ROLE authenticated")
        explain = conn.execute(
            "EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) " + CLASS_LAST_30_DAYS,
            {"class_id": klass, "since": NOW - timedelta(days=30)}).fetchone()
        answer = conn.execute(CLASS_LAST_30_DAYS, {"class_id": klass,
                                                   "since": NOW - timedelta(days=30)}).fetchall()
    assert explain is not None
    nodes = list(_nodes(explain[0][0]["Plan"]))
    initplans = [n for n in nodes if n.get("Parent Relationship") == "InitPlan"]
    helper_plans = [n for n in initplans if "visible_students" in " ".join(n.get("Output", []))]
    assert len(helper_plans) == 1 and helper_plans[0]["Actual Loops"] == 1
    events = _event_scans(nodes)
    assert events and all(n["Node Type"] != "Seq Scan" for n in events)
    assert _uses_user_index(nodes)
    members = [n for n in nodes if n.get("Relation Name") == "class_memberships"]
    assert members and all(n["Node Type"] != "Seq Scan" for n in members)
    expected = conn.execute(
        "SELECT count(*) FROM user_activity_events WHERE occurred_at >= %s AND user_id IN "
        "(SELECT user_id FROM class_memberships WHERE class_id = %s AND member_role = "
        "'student')", (NOW - timedelta(days=30), klass)).fetchone()
    assert expected is not None and expected[0] > 0
    assert [events for _, events in answer] == [expected[0]]
