-- waymark.risk_params_key: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.

CREATE OR REPLACE FUNCTION waymark.risk_params_key(params jsonb)
 RETURNS uuid
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$ SELECT pg_catalog.md5(params::text)::uuid $function$;

REVOKE ALL ON FUNCTION waymark.risk_params_key(jsonb) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION waymark.risk_params_key(jsonb) TO authenticated, service_role;
