-- The warehouse export's SQL, by name (docs/exports.md). Table and column lists come from
-- warehouse.py's one column list ({columns}, {table}), values are bound parameters.

-- watermark --
-- Where this target's export of one table stopped (none: from the beginning).
SELECT received_before, last_deletion FROM waymark.export_watermarks
WHERE target = %(target)s AND table_name = %(table)s;

-- save_watermark --
INSERT INTO waymark.export_watermarks (target, table_name, received_before, last_deletion,
                                       rows_exported)
VALUES (%(target)s, %(table)s, %(received_before)s, %(last_deletion)s, %(rows)s)
ON CONFLICT (target, table_name) DO UPDATE
SET received_before = EXCLUDED.received_before, last_deletion = EXCLUDED.last_deletion,
    rows_exported = waymark.export_watermarks.rows_exported + EXCLUDED.rows_exported,
    updated_at = now();

-- new_rows --
-- Rows received in [%(after)s, %(before)s): stored, with the privacy step already applied
-- (there never was a raw IP or user agent to export). Read as COPY … TO STDOUT (CSV); the
-- day files are split in Arrow, so no sort is asked of the server.
SELECT {columns} FROM public.{table}
WHERE received_at >= %(after)s AND received_at < %(before)s

-- new_deletions --
-- Forgets, anonymizations and purges logged after the target's last export.
SELECT deletion_id, logged_at, action, user_ref, cutoff, collect_cutoff
FROM waymark.deletion_log WHERE deletion_id > %(after)s ORDER BY deletion_id;

-- xapi_target --
-- One LRS's key and progress (docs/exports.md "xAPI"); created with a fresh random key on
-- the first run against it.
INSERT INTO waymark.xapi_targets (endpoint, actor_key) VALUES (%(endpoint)s, %(key)s)
ON CONFLICT (endpoint) DO UPDATE SET endpoint = EXCLUDED.endpoint
RETURNING actor_key, sent_before, last_deletion;

-- xapi_events --
-- The signed-in learners' events of the mapped types received in [%(after)s, %(before)s)
-- (anonymous visitors have no actor; the mapping is xapi.py's). Ordered so statements reach
-- the LRS in the order they happened to arrive.
SELECT event_id, user_id, event_type::text, occurred_at, event_data
FROM public.user_activity_events
WHERE received_at >= %(after)s AND received_at < %(before)s
  AND user_id IS NOT NULL AND event_type::text = ANY (%(types)s)
ORDER BY received_at, event_id;

-- xapi_forgets --
-- Forgets logged after the target's last voiding run: their user_ref names the actor.
SELECT deletion_id, user_ref FROM waymark.deletion_log
WHERE action = 'forget' AND deletion_id > %(after)s ORDER BY deletion_id;

-- xapi_save_sent --
UPDATE waymark.xapi_targets
SET sent_before = %(before)s, statements_sent = statements_sent + %(sent)s, updated_at = now()
WHERE endpoint = %(endpoint)s;

-- xapi_save_voided --
-- One forget's statements are voided: progress and the audit row, in one transaction.
WITH saved AS (
    UPDATE waymark.xapi_targets
    SET last_deletion = %(deletion_id)s, statements_voided = statements_voided + %(voided)s,
        updated_at = now()
    WHERE endpoint = %(endpoint)s
)
INSERT INTO public.privacy_audit (action, details)
VALUES ('xapi_void', jsonb_build_object('deletion_id', %(deletion_id)s::bigint,
                                        'lrs', %(lrs)s::text, 'statements', %(voided)s::int));
