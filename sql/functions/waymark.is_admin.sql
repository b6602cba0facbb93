-- waymark.is_admin: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.

CREATE OR REPLACE FUNCTION waymark.is_admin()
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE PARALLEL SAFE SECURITY DEFINER
 SET search_path TO ''
AS $function$
BEGIN
    RETURN coalesce(waymark.app_role() = 'admin', false);
END
$function$;

REVOKE ALL ON FUNCTION waymark.is_admin() FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION waymark.is_admin() TO authenticated;
