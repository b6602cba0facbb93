-- The ingest package's SQL, by name (backend/queries.py; loaded once by
-- backend/services/ingest/statements.py). How an event becomes a row is told in
-- docs/ingestion.md. Values are always bound parameters (%(name)s or %s); {{name}} includes
-- another statement of this file when it loads. A {columns} placeholder is a column list the
-- caller composes from a Python tuple with psycopg.sql.Identifier (EVENT_COLUMNS,
-- ERROR_COLUMNS), never a value.


-- ======================================================================================
-- The store transaction (store.py)
-- ======================================================================================

-- begin_batch --
-- The first round trip of every batch: begin, the forget contract's shared lock
-- (sql/functions/waymark.lock_forget_*.sql, waymark.is_forgotten.sql), the savepoint a duplicate event id rolls back to, and
-- whether any tombstone is alive (almost never: then nobody needs filtering).
BEGIN;
SELECT waymark.lock_forget_shared();
{{savepoint_events}};
SELECT EXISTS (SELECT 1 FROM waymark.forgotten_users WHERE expires_at > now())

-- savepoint_events --
SAVEPOINT wm_events

-- rollback_to_events --
ROLLBACK TO SAVEPOINT wm_events

-- forgotten_users --
-- The users of the batch who were just forgotten (asked only while a tombstone is alive,
-- under the shared lock).
SELECT s.user_id FROM unnest(%s::uuid[]) AS s(user_id) WHERE waymark.is_forgotten(s.user_id)

-- copy_events --
-- The events straight into the table: as fast as PostgreSQL takes rows.
COPY public.user_activity_events ({columns}) FROM STDIN (FORMAT BINARY)

-- create_stage_events --
-- When an event id is already stored, the COPY goes here instead, then insert_staged_events.
CREATE TEMP TABLE IF NOT EXISTS wm_stage_events
    (LIKE public.user_activity_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS

-- copy_stage_events --
COPY wm_stage_events ({columns}) FROM STDIN (FORMAT BINARY)

-- insert_staged_events --
-- Only new event ids of users not forgotten; returns the ids really inserted (their
-- sessions count only those). The table is partitioned by week: each partition's unique
-- event_id index is the arbiter (a retry carries its occurred_at, so it meets its first
-- copy in the same partition), hence no conflict target.
INSERT INTO public.user_activity_events ({columns})
SELECT {columns} FROM wm_stage_events s WHERE NOT waymark.is_forgotten(s.user_id)
ON CONFLICT DO NOTHING
RETURNING event_id

-- dead_letter --
-- One row PostgreSQL refused as data (SQLSTATE class 22/23), or that could not be encoded
-- for it (sqlstate NULL), kept with the row after the privacy step.
-- At most %(cap)s rows are kept (WAYMARK_DEAD_LETTER_CAP): a flood of bad rows is counted,
-- not stored without bound; `waymark purge` deletes old ones.
INSERT INTO waymark.dead_letters (kind, sqlstate, error, payload)
SELECT %(kind)s, %(sqlstate)s, %(error)s, %(payload)s::jsonb
WHERE (SELECT count(*) FROM waymark.dead_letters) < %(cap)s


-- ======================================================================================
-- Sessions (session_segments.py)
-- ======================================================================================

-- find_open_sessions --
-- Each person's session still open at the start of their first segment; the people as one
-- JSON document (encoded in C). The query is the function's (sql/functions/
-- waymark.open_sessions.sql): PL/pgSQL keeps its plan for the connection's life, where this
-- statement's parse and plan, once per durable commit, cost more than running it.
SELECT idx, session_id, started_at FROM waymark.open_sessions(%(keys)s::json, %(gap)s)

-- upsert_sessions --
-- Segments (a batch's, a launch ping's, or those recounted after duplicates) as one JSON
-- document, inserted or merged into their stored session by the function
-- (sql/functions/waymark.upsert_sessions.sql; PL/pgSQL for the same reason).
SELECT waymark.upsert_sessions(%(segments)s::json)


-- ======================================================================================
-- Error reports (error_groups.py)
-- ======================================================================================

-- create_stage_errors --
CREATE TEMP TABLE IF NOT EXISTS wm_stage_errors
    (LIKE public.error_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS

-- copy_stage_errors --
COPY wm_stage_errors ({columns}) FROM STDIN (FORMAT BINARY)

-- drop_known_errors --
-- Reports already stored (a retry) and reports of users just forgotten.
DELETE FROM wm_stage_errors s
WHERE EXISTS (SELECT 1 FROM public.error_events e WHERE e.error_id = s.error_id)
   OR waymark.is_forgotten(s.user_id)

-- count_staged_errors --
SELECT count(*) FROM wm_stage_errors

-- upsert_error_groups --
INSERT INTO public.error_groups AS g (fingerprint, error_type, message, component_name,
                                      api_endpoint, first_seen, last_seen, occurrences)
SELECT fingerprint, min(error_type), waymark.scrub_text(min(message)), min(component_name),
       min(api_endpoint),
       min(occurred_at), max(occurred_at), count(*)
FROM wm_stage_errors GROUP BY fingerprint
ON CONFLICT (fingerprint) DO UPDATE SET
    first_seen = least(g.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(g.last_seen, EXCLUDED.last_seen),
    occurrences = g.occurrences + EXCLUDED.occurrences

-- count_new_people --
-- People (user id, else visitor hash) in this batch not yet seen in their group.
UPDATE public.error_groups g SET users_affected = g.users_affected + n.people
FROM (
    SELECT gg.group_id, count(DISTINCT p.person) AS people
    FROM (SELECT fingerprint,
                 coalesce(user_id::text, encode(visitor_hash, 'hex')) AS person
          FROM wm_stage_errors) AS p
    JOIN public.error_groups gg USING (fingerprint)
    WHERE p.person IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM public.error_events e
          WHERE e.group_id = gg.group_id
            AND coalesce(e.user_id::text, encode(e.visitor_hash, 'hex')) = p.person)
    GROUP BY gg.group_id
) AS n
WHERE g.group_id = n.group_id

-- insert_errors --
-- The reports, each in the session it falls in (open within %(gap)s:
-- backend.taxonomy.SESSION_GAP), which is then marked has_error. A message or stack can
-- name a person (a host exception "no account for ann@…"): e-mail addresses and phone
-- numbers are replaced as anonymization does (waymark.scrub_text), here and in the group.
WITH inserted AS (
    INSERT INTO public.error_events (error_id, occurred_at, received_at, user_id, visitor_hash,
        session_id, error_type, message, stack, component_name, page_path, api_endpoint,
        http_method, status_code, source, browser, os, device_type, event_data, fingerprint,
        group_id)
    SELECT s.error_id, s.occurred_at, s.received_at, s.user_id, s.visitor_hash,
           (SELECT us.session_id FROM public.user_sessions us
            WHERE ((s.user_id IS NOT NULL AND us.user_id = s.user_id)
                OR (s.user_id IS NULL AND us.user_id IS NULL AND us.visitor_hash = s.visitor_hash))
              AND us.started_at <= s.occurred_at + %(gap)s
              AND us.last_seen_at >= s.occurred_at - %(gap)s
            ORDER BY us.last_seen_at DESC LIMIT 1),
           s.error_type, waymark.scrub_text(s.message), waymark.scrub_text(s.stack),
           s.component_name, s.page_path, s.api_endpoint,
           s.http_method, s.status_code, s.source, s.browser, s.os, s.device_type, s.event_data,
           s.fingerprint, g.group_id
    FROM wm_stage_errors s JOIN public.error_groups g USING (fingerprint)
    ON CONFLICT (error_id) DO NOTHING
    RETURNING session_id
)
UPDATE public.user_sessions us SET has_error = true
FROM (SELECT DISTINCT session_id FROM inserted WHERE session_id IS NOT NULL) AS i
WHERE us.session_id = i.session_id AND NOT us.has_error


-- ======================================================================================
-- Process counters (counters.py)
-- ======================================================================================

-- beat_process --
-- One process's counters, upserted every few seconds (sql/0160_ingest_processes.sql).
INSERT INTO waymark.ingest_processes (process, role, counters, started_at, updated_at)
VALUES (%(process)s, %(role)s, %(counters)s::jsonb, %(started_at)s, now())
ON CONFLICT (process) DO UPDATE SET counters = EXCLUDED.counters, updated_at = now()

-- live_processes --
-- The counters of every process heard from within %(fresh)s (a process gone quiet longer
-- is taken as gone).
SELECT process, role, counters, updated_at FROM waymark.ingest_processes
WHERE updated_at > now() - %(fresh)s
ORDER BY process

-- forget_quiet_processes --
DELETE FROM waymark.ingest_processes WHERE updated_at < now() - %(older_than)s
