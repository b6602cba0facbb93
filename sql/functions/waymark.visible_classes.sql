-- waymark.visible_classes: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.
--
-- The classes the caller may read: a teacher those they teach, a student those they
-- attend, a parent those their children attend; an admin: empty (policies test
-- waymark.is_admin() instead).

CREATE OR REPLACE FUNCTION waymark.visible_classes()
 RETURNS uuid[]
 LANGUAGE plpgsql
 STABLE PARALLEL SAFE SECURITY DEFINER
 SET search_path TO ''
AS $function$
DECLARE
    caller uuid := auth.uid();
    role   text := waymark.app_role();
BEGIN
    IF role = 'teacher' THEN
        RETURN waymark.taught_classes();
    ELSIF role = 'student' THEN
        RETURN ARRAY(SELECT m.class_id FROM public.class_memberships m
                     WHERE m.user_id = caller AND m.member_role = 'student'
                     ORDER BY m.class_id);
    ELSIF role = 'parent' THEN
        RETURN ARRAY(SELECT DISTINCT m.class_id
                     FROM public.guardian_links g
                     JOIN public.class_memberships m
                       ON m.user_id = g.student_id AND m.member_role = 'student'
                     WHERE g.parent_id = caller
                     ORDER BY m.class_id);
    END IF;
    RETURN '{}'::uuid[];
END
$function$;

REVOKE ALL ON FUNCTION waymark.visible_classes() FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION waymark.visible_classes() TO authenticated;
