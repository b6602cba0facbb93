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
