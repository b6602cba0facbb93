-- Risk scoring helpers (backend/services/risk.py).
--
-- waymark.try_timestamptz(text): a timestamp from event_data (e.g. a quest's `due_at`),
-- or NULL when the text is not one. Event data comes from clients; one malformed value
-- must not make the whole at-risk query fail, which a plain ::timestamptz cast would.

CREATE SCHEMA IF NOT EXISTS waymark;

CREATE OR REPLACE FUNCTION waymark.try_timestamptz(value text) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = '' AS $$
BEGIN
    IF value IS NULL OR value !~ '^\d{4}-\d{2}-\d{2}' THEN
        RETURN NULL;
    END IF;
    RETURN value::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION waymark.try_timestamptz(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA waymark TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION waymark.try_timestamptz(text) TO authenticated, service_role;
