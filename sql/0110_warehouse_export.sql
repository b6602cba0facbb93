-- Data that leaves (docs/exports.md): what `waymark warehouse-export` has sent where, and
-- the deletions it must send after it.
--
--   export_watermarks  per target (the --to location) and table: the receipt time up to
--                      which rows were exported, and the last deletion sent. A re-run
--                      starts from here, so each run exports only what is new.
--   deletion_log       every forget, anonymize and purge, as a rule a warehouse can apply:
--                      a forgotten user as the SHA-256 of their id (lower-case text, hex) —
--                      the id itself is never kept — and the cut-offs of the retention runs.
--                      Kept 400 days (`waymark purge`); an export reads what is new since
--                      its target's last run.
--
-- Both are the jobs' own bookkeeping: no grant to the API roles, RLS forced with no policy.

CREATE TABLE IF NOT EXISTS waymark.export_watermarks (
    target          text        NOT NULL,
    table_name      text        NOT NULL,
    received_before timestamptz NOT NULL,
    last_deletion   bigint      NOT NULL DEFAULT 0,
    rows_exported   bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target, table_name)
);
REVOKE ALL ON waymark.export_watermarks FROM PUBLIC;
ALTER TABLE waymark.export_watermarks ENABLE ROW LEVEL SECURITY;
ALTER TABLE waymark.export_watermarks FORCE ROW LEVEL SECURITY;

CREATE TABLE IF NOT EXISTS waymark.deletion_log (
    deletion_id    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at      timestamptz NOT NULL DEFAULT now(),
    action         text        NOT NULL CHECK (action IN ('forget', 'anonymize', 'purge')),
    user_ref       text        CHECK (user_ref ~ '^[0-9a-f]{64}$'),
    cutoff         timestamptz,
    collect_cutoff timestamptz,
    CHECK ((action = 'forget') = (user_ref IS NOT NULL)),
    CHECK ((action = 'forget') = (cutoff IS NULL))
);
CREATE INDEX IF NOT EXISTS deletion_log_logged_at ON waymark.deletion_log (logged_at);
REVOKE ALL ON waymark.deletion_log FROM PUBLIC;
ALTER TABLE waymark.deletion_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE waymark.deletion_log FORCE ROW LEVEL SECURITY;
