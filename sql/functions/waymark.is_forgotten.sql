-- waymark.is_forgotten: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.

CREATE OR REPLACE FUNCTION waymark.is_forgotten(user_id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$
    SELECT user_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM waymark.forgotten_users f
        WHERE f.user_id_hash = sha256(convert_to(lower(user_id::text), 'UTF8'))
          AND f.expires_at > now())
$function$;

REVOKE ALL ON FUNCTION waymark.is_forgotten(uuid) FROM PUBLIC, anon;
