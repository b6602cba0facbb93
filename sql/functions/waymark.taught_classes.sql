-- waymark.taught_classes: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.
--
-- The classes the caller teaches (a teacher only; empty for every other role): the
-- class_memberships policy lets a teacher read every membership of these classes.

CREATE OR REPLACE FUNCTION waymark.taught_classes()
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
        RETURN ARRAY(SELECT m.class_id FROM public.class_memberships m
                     WHERE m.user_id = caller AND m.member_role = 'teacher'
                     ORDER BY m.class_id);
    END IF;
    RETURN '{}'::uuid[];
END
$function$;

REVOKE ALL ON FUNCTION waymark.taught_classes() FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION waymark.taught_classes() TO authenticated;
