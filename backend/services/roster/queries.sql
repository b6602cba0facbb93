-- Class and membership writes, by name (loaded by backend/services/roster/__init__.py);
-- run by manage.py on the service connection.

-- create_class --
INSERT INTO public.classes (name) VALUES (%(name)s)
RETURNING class_id, name, created_at;

-- rename_class --
UPDATE public.classes SET name = %(name)s WHERE class_id = %(class_id)s
RETURNING class_id, name, created_at;

-- delete_class --
-- Its memberships go with it (ON DELETE CASCADE); events are untouched.
DELETE FROM public.classes WHERE class_id = %(class_id)s RETURNING class_id;

-- all_classes --
SELECT k.class_id, k.name, k.created_at,
       count(m.user_id) FILTER (WHERE m.member_role = 'student') AS student_count,
       count(m.user_id) FILTER (WHERE m.member_role = 'teacher') AS teacher_count
FROM public.classes k
LEFT JOIN public.class_memberships m ON m.class_id = k.class_id
GROUP BY k.class_id
ORDER BY k.name, k.class_id;

-- class_members --
SELECT user_id, member_role, created_at FROM public.class_memberships
WHERE class_id = %(class_id)s
ORDER BY member_role DESC, user_id;

-- add_member --
-- Idempotent: adding someone twice in the same role changes nothing. A forgotten user
-- (waymark.is_forgotten) is never re-added.
INSERT INTO public.class_memberships (class_id, user_id, member_role)
SELECT %(class_id)s, %(user_id)s, %(member_role)s
WHERE NOT waymark.is_forgotten(%(user_id)s)
ON CONFLICT DO NOTHING
RETURNING class_id;

-- remove_member --
-- %(member_role)s NULL removes the user from the class in every role.
DELETE FROM public.class_memberships
WHERE class_id = %(class_id)s AND user_id = %(user_id)s
  AND (%(member_role)s::text IS NULL OR member_role = %(member_role)s::text)
RETURNING member_role;

-- class_exists --
SELECT 1 AS found FROM public.classes WHERE class_id = %(class_id)s;
