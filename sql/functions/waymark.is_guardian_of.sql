-- waymark.is_guardian_of: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.

CREATE OR REPLACE FUNCTION waymark.is_guardian_of(student uuid)
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE PARALLEL SAFE SECURITY DEFINER
 SET search_path TO ''
AS $function$
BEGIN
    RETURN coalesce(waymark.app_role() = 'parent', false)
       AND EXISTS (SELECT 1 FROM public.guardian_links g
                   WHERE g.parent_id = auth.uid() AND g.student_id = student);
END
$function$;

REVOKE ALL ON FUNCTION waymark.is_guardian_of(uuid) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION waymark.is_guardian_of(uuid) TO authenticated;
