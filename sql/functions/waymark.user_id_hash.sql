-- waymark.user_id_hash: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.

CREATE OR REPLACE FUNCTION waymark.user_id_hash(user_id uuid)
 RETURNS bytea
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
 SET search_path TO ''
AS $function$ SELECT sha256(convert_to(lower(user_id::text), 'UTF8')) $function$;

REVOKE ALL ON FUNCTION waymark.user_id_hash(uuid) FROM PUBLIC, anon;
