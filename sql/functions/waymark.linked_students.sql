-- waymark.linked_students: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.

CREATE OR REPLACE FUNCTION waymark.linked_students()
 RETURNS uuid[]
 LANGUAGE plpgsql
 STABLE PARALLEL SAFE SECURITY DEFINER
 SET search_path TO ''
AS $function$
BEGIN
    IF coalesce(waymark.app_role() = 'parent', false) THEN
        RETURN ARRAY(SELECT g.student_id FROM public.guardian_links g
                     WHERE g.parent_id = auth.uid());
    END IF;
    RETURN '{}'::uuid[];
END
$function$;

REVOKE ALL ON FUNCTION waymark.linked_students() FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION waymark.linked_students() TO authenticated;
