-- Row-level security policies: the database decides which rows a signed-in user reads.
--
--   user_activity_events, user_sessions,      own rows; a parent also their linked
--   learning_journey_events, error_events     students' rows; an admin every row
--   page_view_analytics, error_groups          admins only (aggregates over everyone)
--   guardian_links                             links naming the caller; admins all
--   tracking_salts, privacy_audit              no API role at all
--
-- `authenticated` gets SELECT and nothing else (writes go through the service
-- connection); `anon` gets nothing. With RLS forced and no INSERT/UPDATE/DELETE
-- policy, a write by an API role is refused even if someone grants it later.
-- The caller's id is `(select auth.uid())` and the role `app_metadata.role` read by
-- SECURITY DEFINER helpers in the private schema `waymark` (not exposed by
-- PostgREST); each `(select ...)` is an InitPlan, evaluated once per query.
-- See docs/access.md.

-- ------------------------------------------------------------------ helpers

CREATE SCHEMA IF NOT EXISTS waymark;

-- The caller's application role: 'student', 'parent' or 'admin'; NULL for no caller
-- or an unknown role. An anonymous sign-in is always a student. Never user_metadata.
CREATE OR REPLACE FUNCTION waymark.app_role() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    SELECT CASE
        WHEN auth.uid() IS NULL
          OR coalesce(auth.jwt() ->> 'role', '') <> 'authenticated' THEN NULL
        WHEN coalesce(auth.jwt() -> 'is_anonymous', 'false'::jsonb) = 'true'::jsonb THEN 'student'
        WHEN coalesce(auth.jwt() -> 'app_metadata' ->> 'role', 'student')
             IN ('student', 'parent', 'admin')
            THEN coalesce(auth.jwt() -> 'app_metadata' ->> 'role', 'student')
        ELSE NULL
    END
$$;

CREATE OR REPLACE FUNCTION waymark.is_admin() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    SELECT coalesce(waymark.app_role() = 'admin', false)
$$;

-- Whether the caller is a parent linked to this student in guardian_links.
CREATE OR REPLACE FUNCTION waymark.is_guardian_of(student uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    SELECT coalesce(waymark.app_role() = 'parent', false)
       AND EXISTS (SELECT 1 FROM public.guardian_links g
                   WHERE g.parent_id = auth.uid() AND g.student_id = student)
$$;

-- The caller's linked students as an array: `user_id = ANY ((select waymark.linked_students())::uuid[])`
-- is computed once per query and can use the (user_id, time) indexes, unlike a
-- per-row is_guardian_of(user_id).
CREATE OR REPLACE FUNCTION waymark.linked_students() RETURNS uuid[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    SELECT CASE WHEN coalesce(waymark.app_role() = 'parent', false) THEN
        ARRAY(SELECT g.student_id FROM public.guardian_links g WHERE g.parent_id = auth.uid())
    ELSE '{}'::uuid[] END
$$;

REVOKE ALL ON FUNCTION waymark.app_role(), waymark.is_admin(), waymark.is_guardian_of(uuid),
    waymark.linked_students() FROM PUBLIC;
DO $$
BEGIN
    -- On Supabase, anon/authenticated may hold EXECUTE from default privileges.
    EXECUTE 'REVOKE ALL ON FUNCTION waymark.app_role(), waymark.is_admin(), '
            'waymark.is_guardian_of(uuid), waymark.linked_students() FROM anon';
END
$$;
GRANT USAGE ON SCHEMA waymark TO authenticated;
GRANT EXECUTE ON FUNCTION waymark.app_role(), waymark.is_admin(), waymark.is_guardian_of(uuid),
    waymark.linked_students() TO authenticated;
-- Nothing else in the private schema is for API roles.
REVOKE ALL ON ALL TABLES IN SCHEMA waymark FROM PUBLIC, anon, authenticated;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA waymark FROM PUBLIC, anon, authenticated;

-- --------------------------------------------------------------------- grants

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC, anon, authenticated;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC, anon, authenticated;
REVOKE ALL ON public.tracking_salts, public.privacy_audit FROM service_role;
GRANT SELECT ON public.user_activity_events, public.user_sessions,
    public.learning_journey_events, public.error_events, public.page_view_analytics,
    public.error_groups, public.guardian_links TO authenticated;

-- RLS on and forced everywhere (0004 did this; repeated so this file stands alone).
ALTER TABLE public.user_activity_events    ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.user_activity_events    FORCE ROW LEVEL SECURITY;
ALTER TABLE public.user_sessions           ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.user_sessions           FORCE ROW LEVEL SECURITY;
ALTER TABLE public.page_view_analytics     ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.page_view_analytics     FORCE ROW LEVEL SECURITY;
ALTER TABLE public.learning_journey_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.learning_journey_events FORCE ROW LEVEL SECURITY;
ALTER TABLE public.error_groups            ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.error_groups            FORCE ROW LEVEL SECURITY;
ALTER TABLE public.error_events            ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.error_events            FORCE ROW LEVEL SECURITY;
ALTER TABLE public.tracking_salts          ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.tracking_salts          FORCE ROW LEVEL SECURITY;
ALTER TABLE public.privacy_audit           ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.privacy_audit           FORCE ROW LEVEL SECURITY;
ALTER TABLE public.guardian_links          ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.guardian_links          FORCE ROW LEVEL SECURITY;

-- ------------------------------------------------------------------- policies
-- One SELECT policy per table for `authenticated` (several permissive policies for
-- one role and action would all be evaluated for every row).

DROP POLICY IF EXISTS "Users read their own events, parents their students', admins all"
    ON public.user_activity_events;
CREATE POLICY "Users read their own events, parents their students', admins all"
    ON public.user_activity_events FOR SELECT TO authenticated
    USING (user_id = (select auth.uid())
           OR user_id = ANY ((select waymark.linked_students())::uuid[])
           OR (select waymark.is_admin()));

DROP POLICY IF EXISTS "Users read their own sessions, parents their students', admins all"
    ON public.user_sessions;
CREATE POLICY "Users read their own sessions, parents their students', admins all"
    ON public.user_sessions FOR SELECT TO authenticated
    USING (user_id = (select auth.uid())
           OR user_id = ANY ((select waymark.linked_students())::uuid[])
           OR (select waymark.is_admin()));

DROP POLICY IF EXISTS "Users read their own milestones, parents their students', admins all"
    ON public.learning_journey_events;
CREATE POLICY "Users read their own milestones, parents their students', admins all"
    ON public.learning_journey_events FOR SELECT TO authenticated
    USING (user_id = (select auth.uid())
           OR user_id = ANY ((select waymark.linked_students())::uuid[])
           OR (select waymark.is_admin()));

DROP POLICY IF EXISTS "Users read their own errors, parents their students', admins all"
    ON public.error_events;
CREATE POLICY "Users read their own errors, parents their students', admins all"
    ON public.error_events FOR SELECT TO authenticated
    USING (user_id = (select auth.uid())
           OR user_id = ANY ((select waymark.linked_students())::uuid[])
           OR (select waymark.is_admin()));

DROP POLICY IF EXISTS "Admins read page analytics" ON public.page_view_analytics;
CREATE POLICY "Admins read page analytics"
    ON public.page_view_analytics FOR SELECT TO authenticated
    USING ((select waymark.is_admin()));

DROP POLICY IF EXISTS "Admins read error groups" ON public.error_groups;
CREATE POLICY "Admins read error groups"
    ON public.error_groups FOR SELECT TO authenticated
    USING ((select waymark.is_admin()));

DROP POLICY IF EXISTS "Users read the guardian links that name them, admins all"
    ON public.guardian_links;
CREATE POLICY "Users read the guardian links that name them, admins all"
    ON public.guardian_links FOR SELECT TO authenticated
    USING (parent_id = (select auth.uid())
           OR student_id = (select auth.uid())
           OR (select waymark.is_admin()));

-- tracking_salts and privacy_audit: RLS forced, no policy, no grant: no API role reads them.

-- Every column a policy filters on has an index (user_id ones are in 0003).
CREATE INDEX IF NOT EXISTS guardian_links_parent ON public.guardian_links (parent_id);

-- The helpers read guardian_links as their owner; that owner must bypass RLS.
DO $$
BEGIN
    IF NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user) THEN
        RAISE WARNING 'waymark: % neither is a superuser nor has BYPASSRLS; the RLS helper '
                      'functions it owns cannot read guardian_links (see docs/access.md)',
                      current_user;
    END IF;
END
$$;
