-- The foundations' statements, by name (backend/queries.py loads this file as FOUNDATION).
-- The packages under backend/services keep theirs in their own queries.sql.

-- role_check --
-- security.py: the start-up check that Waymark does not connect as a superuser, and that
-- the API role cannot bypass row-level security.
SELECT r.rolname AS name, r.rolsuper AS superuser, r.rolbypassrls AS bypass_rls,
       coalesce((SELECT a.rolbypassrls OR a.rolsuper FROM pg_catalog.pg_roles a
                 WHERE a.rolname = 'authenticated'), false) AS authenticated_bypasses
FROM pg_catalog.pg_roles r
WHERE r.rolname = current_user;

-- try_job_lock --
-- services/jobs.py: two runs of one cron job never overlap (session-level, non-blocking).
SELECT pg_try_advisory_lock(%(namespace)s, %(key)s);

-- release_job_lock --
SELECT pg_advisory_unlock(%(namespace)s, %(key)s);

-- may_see_student --
-- auth.py, run as the caller: the database's own answer (waymark.visible_students, the
-- helper the policies use) to "may this parent or teacher see that student?".
SELECT %(student_id)s::uuid = ANY (waymark.visible_students()) AS visible;

-- migrations_lock --
-- migrations.py: concurrent `waymark migrate` runs take turns.
SELECT pg_advisory_lock(%(key)s);

-- migrations_unlock --
SELECT pg_advisory_unlock(%(key)s);

-- migrations_table_exists --
SELECT to_regclass('waymark.schema_migrations') IS NOT NULL;

-- migrations_bootstrap --
CREATE SCHEMA IF NOT EXISTS waymark;
CREATE TABLE IF NOT EXISTS waymark.schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- migrations_applied --
SELECT version, checksum FROM waymark.schema_migrations;

-- migrations_record --
INSERT INTO waymark.schema_migrations (version, name, checksum)
VALUES (%(version)s, %(name)s, %(checksum)s);

-- repeatables_table --
-- the repeatable function files of sql/functions/ applied, with their checksums
CREATE TABLE IF NOT EXISTS waymark.schema_repeatables (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- repeatables_table_exists --
SELECT to_regclass('waymark.schema_repeatables') IS NOT NULL;

-- repeatables_applied --
SELECT name, checksum FROM waymark.schema_repeatables;

-- repeatables_record --
INSERT INTO waymark.schema_repeatables (name, checksum) VALUES (%(name)s, %(checksum)s)
ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now();

-- event_partitioning_exists --
-- migrations.py: is user_activity_events partitioned (sql/0152) in this database?
SELECT to_regprocedure('waymark.ensure_event_partitions(date,date)') IS NOT NULL
   AND to_regclass('public.user_activity_events_default') IS NOT NULL;

-- ensure_event_partitions --
-- migrations.py (after migrating), rollup and the partitions job: a partition for every
-- ISO week from %(back)s days ago to %(ahead)s days ahead.
SELECT waymark.ensure_event_partitions((now() AT TIME ZONE 'UTC')::date - %(back)s::int,
                                       (now() AT TIME ZONE 'UTC')::date + %(ahead)s::int) AS made;
