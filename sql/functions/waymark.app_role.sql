-- waymark.app_role: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.

CREATE OR REPLACE FUNCTION waymark.app_role()
 RETURNS text
 LANGUAGE plpgsql
 STABLE PARALLEL SAFE SECURITY DEFINER
 SET search_path TO ''
AS $function$
DECLARE
    claims    jsonb := auth.jwt();
    requested text  := coalesce(claims #>> '{app_metadata,role}', 'student');
BEGIN
    IF claims IS NULL OR claims ->> 'sub' IS NULL
       OR coalesce(claims ->> 'role', '') <> 'authenticated' THEN
        RETURN NULL;                         -- no signed-in user
    END IF;
    IF claims -> 'is_anonymous' = 'true'::jsonb THEN
        RETURN 'student';                    -- anonymous sign-ins are never parent/teacher/admin
    END IF;
    IF requested IN ('student', 'parent', 'teacher', 'admin') THEN
        RETURN requested;                    -- app_metadata only, never user_metadata
    END IF;
    RETURN NULL;
END
$function$;

REVOKE ALL ON FUNCTION waymark.app_role() FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION waymark.app_role() TO authenticated;
