-- The privacy package's statements, by name (loaded once by backend/services/privacy/__init__.py).
-- Each is run by the module named in its comment; values are always bound parameters.

-- insert_audit --
-- One audit row (export, forget, anonymize, purge, salt_*): counts and periods, never a person.
INSERT INTO public.privacy_audit (action, details) VALUES (%(action)s, %(details)s);

-- catalog --
-- used by forget.py
SELECT n.nspname AS schema, c.relname AS table, a.attname AS column,
       format_type(a.atttypid, a.atttypmod) AS type,
       coalesce(pg_get_expr(d.adbin, d.adrelid), '') AS default_expr,
       EXISTS (SELECT 1 FROM pg_attribute r WHERE r.attrelid = c.oid
               AND r.attname = 'received_at' AND NOT r.attisdropped) AS has_received_at
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname IN ('public', %(private)s) AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition  -- a partitioned table's rows are reached through its parent
  AND a.attnum > 0 AND NOT a.attisdropped
  AND format_type(a.atttypid, a.atttypmod) IN
      ('uuid', 'bytea', 'text', 'character varying', 'jsonb', 'json')
ORDER BY n.nspname, c.relname, a.attnum;

-- kept_salts --
-- used by forget.py
SELECT period_start, salt FROM public.tracking_salts ORDER BY period_start;

-- delete_user_errors --
-- used by forget.py
DELETE FROM public.error_events
WHERE user_id = %(user_id)s
   OR (visitor_hash = ANY(%(hashes)s) AND received_at >= %(since)s)
RETURNING group_id;

-- uncount_error_groups --
-- used by forget.py
UPDATE public.error_groups g
SET occurrences = greatest(g.occurrences - d.n, 0),
    users_affected = greatest(g.users_affected - 1, 0)
FROM unnest(%(group_ids)s::bigint[], %(counts)s::bigint[]) AS d(group_id, n)
WHERE g.group_id = d.group_id;

-- anonymize_events --
-- used by retention.py, on one partition of the events at a time ({table}); a partition
-- wholly past the cut-off is rewritten instead (rewrite_anonymized_partition below, the
-- same column rules: tests/services/privacy/test_partitions.py compares the two).
UPDATE {table}
SET user_id = NULL, visitor_hash = NULL, network_hash = NULL, session_id = NULL,
    event_data = CASE WHEN event_data::text ~* %(pii_hint)s
                      THEN waymark.scrub_jsonb(event_data, %(pii_keys)s) ELSE event_data END,
    page_title = waymark.scrub_text(page_title),
    page_path = waymark.scrub_emails(page_path),
    referrer = waymark.scrub_emails(referrer),
    utm_source = waymark.scrub_emails(utm_source),
    utm_medium = waymark.scrub_emails(utm_medium),
    utm_campaign = waymark.scrub_emails(utm_campaign),
    anonymized_at = %(now)s
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid
  AND occurred_at < %(cutoff)s AND anonymized_at IS NULL;

-- anonymize_sessions --
-- used by retention.py
UPDATE public.user_sessions
SET user_id = NULL, visitor_hash = NULL,
    entry_page = waymark.scrub_emails(entry_page),
    exit_page = waymark.scrub_emails(exit_page),
    referrer = waymark.scrub_emails(referrer),
    anonymized_at = %(now)s
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid
  AND last_seen_at < %(cutoff)s AND anonymized_at IS NULL;

-- anonymize_errors --
-- used by retention.py
UPDATE public.error_events
SET user_id = NULL, visitor_hash = NULL, session_id = NULL,
    message = waymark.scrub_text(message),
    stack = waymark.scrub_text(stack),
    page_path = waymark.scrub_emails(page_path),
    api_endpoint = waymark.scrub_emails(api_endpoint),
    event_data = CASE WHEN event_data::text ~* %(pii_hint)s
                      THEN waymark.scrub_jsonb(event_data, %(pii_keys)s) ELSE event_data END,
    anonymized_at = %(now)s
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid
  AND occurred_at < %(cutoff)s AND anonymized_at IS NULL;

-- anonymize_journey --
-- used by retention.py
UPDATE public.learning_journey_events
SET user_id = NULL,
    dedupe_key = CASE WHEN strpos(lower(dedupe_key), lower(user_id::text)) > 0
                      THEN NULL ELSE dedupe_key END,
    details = CASE WHEN details::text ~* %(pii_hint)s
                      THEN waymark.scrub_jsonb(details, %(pii_keys)s) ELSE details END,
    anonymized_at = %(now)s
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid
  AND occurred_at < %(cutoff)s AND anonymized_at IS NULL;

-- anonymize_interventions --
-- used by retention.py: an old intervention keeps its action and time (the outcome
-- figures' history) but loses both people and its note, free text that cannot be scrubbed
-- field by field.
UPDATE public.interventions
SET student_id = NULL, actor_id = NULL, note = NULL, anonymized_at = %(now)s
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid
  AND created_at < %(cutoff)s AND anonymized_at IS NULL;

-- anonymize_alert_crossings --
-- used by retention.py: an old crossing keeps its dates (lead-time history), not the student.
UPDATE public.alert_crossings
SET student_id = NULL, anonymized_at = %(now)s
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid
  AND detected_at < %(cutoff)s AND anonymized_at IS NULL;

-- anonymize_alert_deliveries --
-- used by retention.py: the delivery log keeps status and attempts, not the recipient.
UPDATE public.alert_deliveries
SET recipient_id = NULL, anonymized_at = %(now)s
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid
  AND created_at < %(cutoff)s AND anonymized_at IS NULL;

-- delete_old_dead_letters --
-- used by retention.py
DELETE FROM waymark.dead_letters
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid AND failed_at < %(cutoff)s;

-- scrub_error_groups --
-- used by retention.py
UPDATE public.error_groups
SET message = waymark.scrub_text(message)
WHERE first_seen < %(cutoff)s AND message IS DISTINCT FROM waymark.scrub_text(message);

-- purge_events --
-- used by retention.py, on one partition of the events at a time ({table}); a partition
-- wholly past the cut-off is dropped instead.
DELETE FROM {table}
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid
  AND (occurred_at < %(cutoff)s
       OR (event_type = ANY(%(collect_types)s) AND occurred_at < %(collect_cutoff)s));

-- purge_collect_events --
-- used by retention.py on an anonymized week straddling the deletion cut-off: only its
-- /collect and /measure rows past their shorter retention go now; the week itself is
-- dropped once wholly past the cut-off.
DELETE FROM {table}
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid
  AND event_type = ANY(%(collect_types)s) AND occurred_at < %(collect_cutoff)s;

-- purge_sessions --
-- used by retention.py
DELETE FROM public.user_sessions
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid AND last_seen_at < %(cutoff)s;

-- purge_errors --
-- used by retention.py
DELETE FROM public.error_events
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid AND occurred_at < %(cutoff)s;

-- purge_journey --
-- used by retention.py
DELETE FROM public.learning_journey_events
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid AND occurred_at < %(cutoff)s;

-- daily_tables --
-- used by retention.py
SELECT c.relname FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attname = 'day'
  AND a.atttypid = 'date'::regtype AND NOT a.attisdropped
ORDER BY c.relname;

-- purge_error_groups --
-- used by retention.py
DELETE FROM public.error_groups g
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid AND g.last_seen < %(cutoff)s
  AND NOT EXISTS (SELECT 1 FROM public.error_events e WHERE e.group_id = g.group_id);

-- purge_audit --
-- used by retention.py
DELETE FROM public.privacy_audit
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid AND occurred_at < %(cutoff)s;

-- table_extent --
-- used by retention.py
SELECT (pg_relation_size(c.oid) / current_setting('block_size')::int)::bigint AS blocks,
       CASE WHEN c.reltuples > 0 AND c.relpages > 0 THEN c.reltuples / c.relpages END
           AS rows_per_block
FROM pg_class c WHERE c.oid = %(table)s::regclass;

-- delete_expired_salts --
-- used by salt_rotation.py
DELETE FROM public.tracking_salts
WHERE period_start < %(keep_from)s
RETURNING period_start;

-- audit_salt_destroyed --
-- used by salt_rotation.py
INSERT INTO public.privacy_audit (action, details)
VALUES ('salt_destroyed', jsonb_build_object('period_start', %(period_start)s::timestamptz));

-- vacuum_full_salts --
-- used by salt_rotation.py
VACUUM (FULL, VERBOSE) public.tracking_salts;

-- vacuum_salts --
-- used by salt_rotation.py
VACUUM (VERBOSE) public.tracking_salts;

-- get_or_create_salt --
-- used by salts.py
WITH created AS (
    INSERT INTO public.tracking_salts (period_start, salt)
    VALUES (%(period_start)s, %(salt)s)
    ON CONFLICT (period_start) DO NOTHING
    RETURNING salt, true AS created
)
SELECT salt, created FROM created
UNION ALL
SELECT salt, false FROM public.tracking_salts WHERE period_start = %(period_start)s
LIMIT 1;

-- select_salt --
-- used by salts.py
SELECT salt, false FROM public.tracking_salts WHERE period_start = %(period_start)s;

-- audit_salt_created --
-- used by salts.py
INSERT INTO public.privacy_audit (action, details)
VALUES ('salt_created', jsonb_build_object('period_start', %(period_start)s::timestamptz));



-- add_tombstone --
-- used by tombstones.py
INSERT INTO waymark.forgotten_users (user_id_hash, expires_at)
VALUES (sha256(convert_to(lower(%(user_id)s::text), 'UTF8')), now() + %(ttl)s)
ON CONFLICT (user_id_hash) DO UPDATE SET expires_at = EXCLUDED.expires_at, completed_at = NULL;

-- forget_completed --
-- The forget of %(user_id)s ran to the end: until the tombstone expires, a repeat is a no-op.
UPDATE waymark.forgotten_users SET completed_at = now()
WHERE user_id_hash = sha256(convert_to(lower(%(user_id)s::text), 'UTF8'));

-- already_forgotten --
-- A finished forget of %(user_id)s whose tombstone still lives (the writer drops their
-- events meanwhile, so nothing new can have been stored).
SELECT EXISTS (
    SELECT 1 FROM waymark.forgotten_users
    WHERE user_id_hash = sha256(convert_to(lower(%(user_id)s::text), 'UTF8'))
      AND expires_at > now() AND completed_at IS NOT NULL) AS done;

-- delete_expired --
-- used by tombstones.py
DELETE FROM waymark.forgotten_users WHERE expires_at <= now();

-- lock_forget_exclusive --
-- forget's side of the contract with the writer (sql/functions/waymark.lock_forget_*.sql, waymark.is_forgotten.sql)
SELECT waymark.lock_forget_exclusive();

-- set_vacuum_lock_timeout --
-- VACUUM FULL of the salts waits at most this long for its lock, then the plain VACUUM runs
SET lock_timeout = '3s';

-- log_forget --
-- A forget, for the warehouse exports to send on (docs/exports.md): the user as the hex
-- SHA-256 of their id in lower-case text, the form a warehouse can compute from its rows.
INSERT INTO waymark.deletion_log (action, user_ref)
VALUES ('forget', encode(sha256(convert_to(lower(%(user_id)s::text), 'UTF8')), 'hex'));

-- log_retention --
-- An anonymize or purge run, as the rule a warehouse applies to its copy.
INSERT INTO waymark.deletion_log (action, cutoff, collect_cutoff)
VALUES (%(action)s, %(cutoff)s, %(collect_cutoff)s);

-- purge_deletion_log --
-- The log is kept 400 days: an export that has not run for longer re-exports from scratch.
DELETE FROM waymark.deletion_log WHERE logged_at < %(now)s - interval '400 days';


-- ======================================================================================
-- The week partitions of user_activity_events (partitions.py)
-- ======================================================================================

-- event_partitions --
-- Every partition of the events, with its registered range (NULL for the default
-- partition and for any not made by Waymark) and what retention already did to it.
SELECT c.relname AS name, p.from_at, p.to_at, p.anonymized_at, p.collect_purged_at,
       pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS is_default
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
LEFT JOIN waymark.event_partitions p ON p.partition = c.relname
WHERE i.inhparent = 'public.user_activity_events'::regclass
ORDER BY p.from_at NULLS FIRST, c.relname;

-- count_rows --
SELECT count(*) FROM {table};

-- drop_partition --
-- Purge of a whole week: one catalog change instead of a DELETE per row (no dead rows, no
-- vacuum). DROP of a partition locks the parent ACCESS EXCLUSIVE for a moment; the caller
-- sets lock_timeout so a long analytics query makes it retry rather than stall inserts.
DROP TABLE {table};

-- unregister_partition --
DELETE FROM waymark.event_partitions WHERE partition = %(name)s;

-- edit_epoch --
-- The count of changes to stored events other than inserts and anonymization; read
-- FOR SHARE at a swap, so a forget cannot commit between the check and the swap.
SELECT epoch FROM waymark.event_edits;

-- edit_epoch_locked --
SELECT epoch FROM waymark.event_edits FOR SHARE;

-- bump_edit_epoch --
-- forget.py, in each transaction that deletes or redacts stored events (first, so the row
-- lock is held until it commits: a partition swap waits for it and then sees the change).
UPDATE waymark.event_edits SET epoch = epoch + 1;

-- create_rewrite_table --
CREATE TABLE {target} (LIKE public.user_activity_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);

-- rewrite_anonymized_partition --
-- One statement for a whole week: every row with no link to a person and PII scrubbed, as
-- anonymize_events does row by row (same rules), into a new table that is then indexed
-- and swapped in (partitions.rewrite_anonymized).
INSERT INTO {target}
SELECT occurred_at, received_at, coalesce(anonymized_at, %(now)s), event_id,
       NULL, NULL, duration_ms, load_time_ms, event_category, source, device_type,
       status_code, event_type, NULL, NULL, browser, os,
       waymark.scrub_emails(page_path), waymark.scrub_text(page_title),
       waymark.scrub_emails(referrer), waymark.scrub_emails(utm_source),
       waymark.scrub_emails(utm_medium), waymark.scrub_emails(utm_campaign),
       CASE WHEN event_data::text ~* %(pii_hint)s
            THEN waymark.scrub_jsonb(event_data, %(pii_keys)s) ELSE event_data END
FROM {source};

-- prepare_partition --
SELECT waymark.prepare_event_partition(%(table)s::regclass);

-- add_range_check --
-- a CHECK matching the range lets ATTACH skip scanning the table (DDL: the bounds are
-- literals composed by psycopg.sql, not parameters)
ALTER TABLE {table} ADD CONSTRAINT {constraint}
    CHECK (occurred_at >= {from_at} AND occurred_at < {to_at});

-- detach_partition --
ALTER TABLE public.user_activity_events DETACH PARTITION {table};

-- attach_partition --
ALTER TABLE public.user_activity_events ATTACH PARTITION {table}
    FOR VALUES FROM ({from_at}) TO ({to_at});

-- rename_table --
ALTER TABLE {table} RENAME TO {name};

-- table_indexes --
SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = %(table)s::regclass;

-- rename_index --
ALTER INDEX {index} RENAME TO {name};

-- drop_table_if_exists --
DROP TABLE IF EXISTS {table};

-- mark_anonymized --
UPDATE waymark.event_partitions SET anonymized_at = %(now)s WHERE partition = %(name)s;

-- mark_collect_purged --
UPDATE waymark.event_partitions SET collect_purged_at = %(now)s WHERE partition = %(name)s;

-- partition_maintenance_lock --
-- anonymize's rewrites and purge's work on the events take turns (session-level).
SELECT pg_advisory_lock(%(key)s);

-- partition_maintenance_unlock --
SELECT pg_advisory_unlock(%(key)s);
