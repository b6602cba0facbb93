-- Let queries under RLS run in parallel. PostgreSQL plans a query serially as soon as it
-- mentions one PARALLEL UNSAFE function (the default for new functions), and every RLS
-- policy mentions auth.uid() and the waymark helpers: an admin's scan over all events
-- ran on one core. The helpers only read settings and guardian_links, so they are
-- parallel safe (GUCs such as request.jwt.claims are copied to parallel workers).

ALTER FUNCTION waymark.app_role() PARALLEL SAFE;
ALTER FUNCTION waymark.is_admin() PARALLEL SAFE;
ALTER FUNCTION waymark.is_guardian_of(uuid) PARALLEL SAFE;
ALTER FUNCTION waymark.linked_students() PARALLEL SAFE;

-- The auth.* stand-ins that 0001 created on plain PostgreSQL (owned by this role). On
-- Supabase they belong to supabase_auth_admin and are left as Supabase ships them.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOREACH f IN ARRAY ARRAY['auth.uid()', 'auth.jwt()', 'auth.role()']::regprocedure[] LOOP
        IF (SELECT p.proparallel <> 's' AND (p.proowner = (SELECT oid FROM pg_roles
                                                           WHERE rolname = current_user)
                                             OR (SELECT rolsuper FROM pg_roles
                                                 WHERE rolname = current_user))
            FROM pg_proc p WHERE p.oid = f) THEN
            EXECUTE format('ALTER FUNCTION %s PARALLEL SAFE', f);
        END IF;
    END LOOP;
END
$$;
