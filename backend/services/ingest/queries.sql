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
-- sessions count only those).
INSERT INTO public.user_activity_events ({columns})
SELECT {columns} FROM wm_stage_events s WHERE NOT waymark.is_forgotten(s.user_id)
ON CONFLICT (event_id) DO NOTHING
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
-- Each person's latest session (one index probe: sessions of a person never overlap),
-- kept when it is still open at the segment's start (%(gap)s: backend.taxonomy.SESSION_GAP).
-- The people come as one JSON document (encoded in C; psycopg adapted five arrays element
-- by element in Python).
SELECT k.idx, m.session_id, m.started_at
FROM (SELECT j.idx, j.user_id, decode(j.visitor_hash, 'hex') AS visitor_hash, j.started_at,
             j.last_seen_at
      FROM json_to_recordset(%(keys)s::json) AS j(idx int, user_id uuid, visitor_hash text,
                                                   started_at timestamptz,
                                                   last_seen_at timestamptz)) AS k
CROSS JOIN LATERAL (
    (SELECT us.session_id, us.last_seen_at, us.started_at FROM public.user_sessions us
     WHERE k.user_id IS NOT NULL AND us.user_id = k.user_id
       AND us.started_at <= k.last_seen_at + %(gap)s
     ORDER BY us.started_at DESC LIMIT 1)
    UNION ALL
    (SELECT us.session_id, us.last_seen_at, us.started_at FROM public.user_sessions us
     WHERE k.user_id IS NULL AND us.visitor_hash = k.visitor_hash AND us.user_id IS NULL
     ORDER BY us.last_seen_at DESC LIMIT 1)
) AS m
WHERE m.last_seen_at >= k.started_at - %(gap)s AND m.started_at <= k.last_seen_at + %(gap)s

-- session_insert --
-- The head of both session upserts; a source aliased s follows it.
INSERT INTO public.user_sessions AS us (
    session_id, user_id, visitor_hash, started_at, last_seen_at, duration_seconds,
    page_count, event_count, is_bounce, is_app_launch, browser, os, device_type,
    entry_page, exit_page, referrer, utm_source, utm_medium, utm_campaign)
SELECT s.session_id, s.user_id, s.visitor_hash, s.started_at, s.last_seen_at,
       extract(epoch FROM s.last_seen_at - s.started_at)::integer,
       s.page_count, s.event_count, s.page_count <= 1, s.is_app_launch, s.browser, s.os,
       s.device_type, s.entry_page, s.exit_page, s.referrer, s.utm_source, s.utm_medium,
       s.utm_campaign

-- session_merge --
-- A segment continuing a stored session adds its counts and widens its span.
ON CONFLICT (session_id) DO UPDATE SET
    started_at = least(us.started_at, EXCLUDED.started_at),
    last_seen_at = greatest(us.last_seen_at, EXCLUDED.last_seen_at),
    duration_seconds = extract(epoch FROM greatest(us.last_seen_at, EXCLUDED.last_seen_at)
                                        - least(us.started_at, EXCLUDED.started_at))::integer,
    page_count = us.page_count + EXCLUDED.page_count,
    event_count = us.event_count + EXCLUDED.event_count,
    is_bounce = us.page_count + EXCLUDED.page_count <= 1,
    entry_page = CASE WHEN EXCLUDED.started_at < us.started_at OR us.entry_page IS NULL
                      THEN coalesce(EXCLUDED.entry_page, us.entry_page) ELSE us.entry_page END,
    exit_page = CASE WHEN EXCLUDED.last_seen_at >= us.last_seen_at
                     THEN coalesce(EXCLUDED.exit_page, us.exit_page) ELSE us.exit_page END,
    referrer = coalesce(us.referrer, EXCLUDED.referrer),
    utm_source = coalesce(us.utm_source, EXCLUDED.utm_source),
    utm_medium = coalesce(us.utm_medium, EXCLUDED.utm_medium),
    utm_campaign = coalesce(us.utm_campaign, EXCLUDED.utm_campaign),
    browser = coalesce(us.browser, EXCLUDED.browser),
    os = coalesce(us.os, EXCLUDED.os),
    device_type = coalesce(us.device_type, EXCLUDED.device_type)

-- upsert_sessions --
-- Segments as one array per column (launch pings, and segments recounted after duplicates).
{{session_insert}}
FROM unnest(%(session_id)s::uuid[], %(user_id)s::uuid[], %(visitor_hash)s::bytea[],
            %(started_at)s::timestamptz[], %(last_seen_at)s::timestamptz[],
            %(page_count)s::int[], %(event_count)s::int[], %(is_app_launch)s::boolean[],
            %(browser)s::text[], %(os)s::text[], %(device_type)s::text[],
            %(entry_page)s::text[], %(exit_page)s::text[], %(referrer)s::text[],
            %(utm_source)s::text[], %(utm_medium)s::text[], %(utm_campaign)s::text[])
     AS s(session_id, user_id, visitor_hash, started_at, last_seen_at, page_count,
          event_count, is_app_launch, browser, os, device_type, entry_page, exit_page,
          referrer, utm_source, utm_medium, utm_campaign)
{{session_merge}}

-- upsert_sessions_json --
-- The same segments as one JSON document (one parameter: encoded in C, off the database
-- thread, instead of 17 arrays whose elements psycopg adapts one by one).
{{session_insert}}
FROM (SELECT j.session_id, j.user_id, decode(j.visitor_hash, 'hex') AS visitor_hash,
            j.started_at, j.last_seen_at, j.page_count, j.event_count, j.is_app_launch,
            j.browser, j.os, j.device_type, j.entry_page, j.exit_page, j.referrer,
            j.utm_source, j.utm_medium, j.utm_campaign
     FROM json_to_recordset(%(segments)s::json) AS j(
            session_id uuid, user_id uuid, visitor_hash text, started_at timestamptz,
            last_seen_at timestamptz, page_count int, event_count int, is_app_launch boolean,
            browser text, os text, device_type text, entry_page text, exit_page text,
            referrer text, utm_source text, utm_medium text, utm_campaign text)) AS s
{{session_merge}}


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
