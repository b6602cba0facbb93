-- xAPI to a learning record store (docs/exports.md "xAPI"): where `waymark xapi-sync`
-- stopped for each LRS, and the key of its pseudonymous actors.
--
--   xapi_targets  per LRS endpoint: the random key the actors' account names are keyed
--                 with (HMAC-SHA256 of the forget log's user_ref: a name cannot be turned
--                 back into a user id without the key, and a forget in the log can be turned
--                 into the name to void), the receipt time and event id up to which events
--                 were sent, and the last deletion_log row whose statements were voided.
--
-- The job's own bookkeeping: no grant to the API roles, RLS forced with no policy.

CREATE TABLE IF NOT EXISTS waymark.xapi_targets (
    endpoint        text        PRIMARY KEY,
    actor_key       bytea       NOT NULL CHECK (length(actor_key) >= 32),
    sent_before     timestamptz NOT NULL DEFAULT '1970-01-01 00:00:00+00',
    last_deletion   bigint      NOT NULL DEFAULT 0,
    statements_sent bigint      NOT NULL DEFAULT 0,
    statements_voided bigint    NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON waymark.xapi_targets FROM PUBLIC;
ALTER TABLE waymark.xapi_targets ENABLE ROW LEVEL SECURITY;
ALTER TABLE waymark.xapi_targets FORCE ROW LEVEL SECURITY;

-- the audit says what was voided where, never for whom
ALTER TABLE public.privacy_audit DROP CONSTRAINT IF EXISTS privacy_audit_action_check;
ALTER TABLE public.privacy_audit ADD CONSTRAINT privacy_audit_action_check CHECK (action IN (
    'salt_created', 'salt_destroyed', 'anonymize', 'purge', 'forget', 'export', 'xapi_void'));
