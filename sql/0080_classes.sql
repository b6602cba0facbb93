-- Teachers and classes: a fourth role scoped to the classes a teacher teaches.
--
--   classes             a teacher reads the classes they teach, a student the classes they
--                       attend, a parent their children's classes; admins all
--   class_memberships   a teacher reads the memberships of the classes they teach, a student
--                       their own, a parent their children's; admins all
--
-- Memberships are written by the service connection (`waymark classes`, the admin
-- endpoints), never by an API role. Who may see which student is one SECURITY DEFINER
-- helper, waymark.visible_students() (sql/functions/), evaluated once per query as an
-- InitPlan; the student tables' policies are rewritten below to use it. See docs/access.md.

CREATE TABLE IF NOT EXISTS public.classes (
    class_id   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.class_memberships (
    class_id    uuid        NOT NULL REFERENCES public.classes (class_id) ON DELETE CASCADE,
    user_id     uuid        NOT NULL,
    member_role text        NOT NULL CHECK (member_role IN ('teacher', 'student')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (class_id, member_role, user_id)
);

-- "Which classes does this user teach/attend": the helpers' lookup, one index probe.
-- The primary key serves "who is in this class" (class_id, member_role, user_id).
CREATE INDEX IF NOT EXISTS class_memberships_user
    ON public.class_memberships (user_id, member_role, class_id);

ALTER TABLE public.classes           ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.classes           FORCE ROW LEVEL SECURITY;
ALTER TABLE public.class_memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.class_memberships FORCE ROW LEVEL SECURITY;

REVOKE ALL ON public.classes, public.class_memberships FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.classes, public.class_memberships TO authenticated;

-- The helpers' first definitions (their current ones live in sql/functions/ and are
-- re-applied after the ordered migrations); the policies below need them to exist.
CREATE OR REPLACE FUNCTION waymark.visible_students() RETURNS uuid[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$ SELECT '{}'::uuid[] $$;
CREATE OR REPLACE FUNCTION waymark.visible_classes() RETURNS uuid[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$ SELECT '{}'::uuid[] $$;
CREATE OR REPLACE FUNCTION waymark.taught_classes() RETURNS uuid[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$ SELECT '{}'::uuid[] $$;

-- -------------------------------------------------------------- student tables
-- Everyone reads their own rows; beyond that, the students the helper names
-- (a parent's children, a teacher's class students); admins every row.

DROP POLICY IF EXISTS "Users read their own events, parents their students', admins all"
    ON public.user_activity_events;
DROP POLICY IF EXISTS "Users read their own events and their students', admins all"
    ON public.user_activity_events;
CREATE POLICY "Users read their own events and their students', admins all"
    ON public.user_activity_events FOR SELECT TO authenticated
    USING (user_id = (select auth.uid())
           OR user_id = ANY ((select waymark.visible_students())::uuid[])
           OR (select waymark.is_admin()));

DROP POLICY IF EXISTS "Users read their own sessions, parents their students', admins all"
    ON public.user_sessions;
DROP POLICY IF EXISTS "Users read their own sessions and their students', admins all"
    ON public.user_sessions;
CREATE POLICY "Users read their own sessions and their students', admins all"
    ON public.user_sessions FOR SELECT TO authenticated
    USING (user_id = (select auth.uid())
           OR user_id = ANY ((select waymark.visible_students())::uuid[])
           OR (select waymark.is_admin()));

DROP POLICY IF EXISTS "Users read their own milestones, parents their students', admins all"
    ON public.learning_journey_events;
DROP POLICY IF EXISTS "Users read their own milestones and their students', admins all"
    ON public.learning_journey_events;
CREATE POLICY "Users read their own milestones and their students', admins all"
    ON public.learning_journey_events FOR SELECT TO authenticated
    USING (user_id = (select auth.uid())
           OR user_id = ANY ((select waymark.visible_students())::uuid[])
           OR (select waymark.is_admin()));

DROP POLICY IF EXISTS "Users read their own errors, parents their students', admins all"
    ON public.error_events;
DROP POLICY IF EXISTS "Users read their own errors and their students', admins all"
    ON public.error_events;
CREATE POLICY "Users read their own errors and their students', admins all"
    ON public.error_events FOR SELECT TO authenticated
    USING (user_id = (select auth.uid())
           OR user_id = ANY ((select waymark.visible_students())::uuid[])
           OR (select waymark.is_admin()));

-- ---------------------------------------------------------------- class tables

DROP POLICY IF EXISTS "Members read their classes, parents their children's, admins all"
    ON public.classes;
CREATE POLICY "Members read their classes, parents their children's, admins all"
    ON public.classes FOR SELECT TO authenticated
    USING (class_id = ANY ((select waymark.visible_classes())::uuid[])
           OR (select waymark.is_admin()));

DROP POLICY IF EXISTS "Teachers read their classes' members, users their own, admins all"
    ON public.class_memberships;
CREATE POLICY "Teachers read their classes' members, users their own, admins all"
    ON public.class_memberships FOR SELECT TO authenticated
    USING (class_id = ANY ((select waymark.taught_classes())::uuid[])
           OR user_id = (select auth.uid())
           OR user_id = ANY ((select waymark.linked_students())::uuid[])
           OR (select waymark.is_admin()));
