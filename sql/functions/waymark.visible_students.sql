-- waymark.visible_students: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.
--
-- The students whose rows the caller may read besides their own, as one array that a
-- policy compares with `user_id = ANY ((select waymark.visible_students())::uuid[])`: an
-- InitPlan computed once per query, after which the (user_id, time) indexes do the work.
-- A student: themself; a parent: their linked children; a teacher: the students of the
-- classes they teach; an admin: empty (policies test waymark.is_admin() instead, so an
-- admin's query never materialises every id). No caller or an unknown role: empty.
-- A set-returning helper rather than a correlated subquery per row keeps the policies
-- plain comparisons that a distributed planner can push down (docs/access.md).

CREATE OR REPLACE FUNCTION waymark.visible_students()
 RETURNS uuid[]
 LANGUAGE plpgsql
 STABLE PARALLEL SAFE SECURITY DEFINER
 SET search_path TO ''
AS $function$
DECLARE
    caller uuid := auth.uid();
    role   text := waymark.app_role();
BEGIN
    IF role = 'student' THEN
        RETURN ARRAY[caller];
    ELSIF role = 'parent' THEN
        RETURN ARRAY(SELECT g.student_id FROM public.guardian_links g
                     WHERE g.parent_id = caller ORDER BY g.student_id);
    ELSIF role = 'teacher' THEN
        RETURN ARRAY(SELECT DISTINCT s.user_id
                     FROM public.class_memberships t
                     JOIN public.class_memberships s
                       ON s.class_id = t.class_id AND s.member_role = 'student'
                     WHERE t.user_id = caller AND t.member_role = 'teacher'
                     ORDER BY s.user_id);
    END IF;
    RETURN '{}'::uuid[];
END
$function$;

REVOKE ALL ON FUNCTION waymark.visible_students() FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION waymark.visible_students() TO authenticated;
