-- Ingestion (issue 3): where the writer sets aside rows the database refused, and the
-- index that lets error grouping count "people affected" without scanning a group.

CREATE TABLE IF NOT EXISTS waymark.dead_letters (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    failed_at timestamptz NOT NULL DEFAULT now(),
    kind      text NOT NULL,
    sqlstate  text,
    error     text NOT NULL,
    payload   jsonb
);
COMMENT ON TABLE waymark.dead_letters IS
    'Rows the writer could not store (after the privacy step: hashes, never raw IP/UA), with the SQLSTATE.';
CREATE INDEX IF NOT EXISTS dead_letters_failed_at ON waymark.dead_letters (failed_at);
REVOKE ALL ON waymark.dead_letters FROM PUBLIC;

CREATE INDEX IF NOT EXISTS error_events_group_person
    ON public.error_events (group_id, (coalesce(user_id::text, encode(visitor_hash, 'hex'))));
