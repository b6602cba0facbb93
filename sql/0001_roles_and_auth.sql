-- Roles and the auth helpers that Supabase provides, created only where absent.
-- On Supabase every object below already exists and this file changes nothing;
-- on plain PostgreSQL it creates compatible stand-ins that read request.jwt.claims.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database on this server created it a moment ago
            END;
        END IF;
    END LOOP;
END
$$;

-- service_role is Supabase's trusted back-end role: it bypasses RLS there, and here too.
DO $$
BEGIN
    IF NOT (SELECT rolbypassrls FROM pg_roles WHERE rolname = 'service_role')
       AND (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER ROLE service_role BYPASSRLS;
    END IF;
END
$$;

-- The connecting role must be able to SET ROLE to the API roles (Supabase's
-- "authenticator" pattern); a superuser already can.
DO $$
DECLARE
    r text;
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
            IF NOT pg_has_role(current_user, r, 'MEMBER') THEN
                EXECUTE format('GRANT %I TO %I', r, current_user);
            END IF;
        END LOOP;
    END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS auth;

DO $$
BEGIN
    IF to_regprocedure('auth.jwt()') IS NULL THEN
        EXECUTE $f$
            CREATE FUNCTION auth.jwt() RETURNS jsonb
            LANGUAGE sql STABLE AS $body$
                SELECT coalesce(
                    nullif(current_setting('request.jwt.claim', true), ''),
                    nullif(current_setting('request.jwt.claims', true), '')
                )::jsonb
            $body$
        $f$;
    END IF;
    IF to_regprocedure('auth.uid()') IS NULL THEN
        EXECUTE $f$
            CREATE FUNCTION auth.uid() RETURNS uuid
            LANGUAGE sql STABLE AS $body$
                SELECT coalesce(
                    nullif(current_setting('request.jwt.claim.sub', true), ''),
                    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
                )::uuid
            $body$
        $f$;
    END IF;
    IF to_regprocedure('auth.role()') IS NULL THEN
        EXECUTE $f$
            CREATE FUNCTION auth.role() RETURNS text
            LANGUAGE sql STABLE AS $body$
                SELECT coalesce(
                    nullif(current_setting('request.jwt.claim.role', true), ''),
                    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
                )::text
            $body$
        $f$;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION auth.jwt(), auth.uid(), auth.role() TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
