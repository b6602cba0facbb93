-- at-risk-students answers from today's stored risk assessments made with the requested
-- scoring parameters. Comparing `details -> 'params'` reads every one of today's rows
-- from the heap (~1.8 kB each). A key of the parameters in a column of its own, and an
-- index on (key, time) that carries the score, the user (read by the RLS policy) and the
-- row id, let PostgreSQL count and rank today's assessments from the index alone (once
-- the pages are all-visible) and fetch the factors of the returned rows only.

CREATE SCHEMA IF NOT EXISTS waymark;

-- The key: md5 of the canonical text of the parameters' jsonb (jsonb orders keys and
-- normalises spacing, so the same parameters always give the same key).
CREATE OR REPLACE FUNCTION waymark.risk_params_key(params jsonb) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pg_catalog.md5(params::text)::uuid $$;

REVOKE ALL ON FUNCTION waymark.risk_params_key(jsonb) FROM PUBLIC;
GRANT USAGE ON SCHEMA waymark TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION waymark.risk_params_key(jsonb) TO authenticated, service_role;

ALTER TABLE public.learning_journey_events ADD COLUMN IF NOT EXISTS params_key uuid;
COMMENT ON COLUMN public.learning_journey_events.params_key IS
    'risk_assessment rows: waymark.risk_params_key(details -> ''params''), written by waymark score. '
    'Rows older than migration 0070 keep NULL except the last two days (only today''s are read).';

-- Only the assessments the stored path can read (today's) need the key; older rows are
-- history and rewriting all of them could take long on a large table.
UPDATE public.learning_journey_events
   SET params_key = waymark.risk_params_key(details -> 'params')
 WHERE milestone = 'risk_assessment' AND params_key IS NULL
   AND details ? 'params' AND occurred_at >= now() - interval '2 days';

CREATE INDEX IF NOT EXISTS learning_journey_events_assessments_by_params
    ON public.learning_journey_events (params_key, occurred_at)
    INCLUDE (risk_score, user_id, id)
    WHERE milestone = 'risk_assessment';
