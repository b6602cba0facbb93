-- Bytes per event (issue 3): event_category, source and device_type of user_activity_events
-- become enum types. Same labels, so every query, comparison ('quest', IN (...)), COPY and
-- result reads as before (results come back as the same strings); a value outside the
-- list is refused as the CHECK constraints refused it. On disk an enum is 4 bytes instead
-- of the text's 5–12: ~10 bytes less per event (~200 instead of ~210 bytes of heap per
-- event; bench/README.md, "bytes per event").
--
-- Changing the type rewrites the table once (an ACCESS EXCLUSIVE lock for the rewrite;
-- ~10 s per million events). A new taxonomy category needs
-- `ALTER TYPE public.event_category ADD VALUE '…'` in a migration, as the CHECK
-- constraint needed a new migration before. error_events (far fewer rows) keeps text.

DO $$
BEGIN
    IF to_regtype('public.event_category') IS NULL THEN
        CREATE TYPE public.event_category AS ENUM (
            'navigation', 'quest', 'badge', 'tutor', 'community', 'auth', 'parent',
            'error', 'acquisition', 'custom');
    END IF;
    IF to_regtype('public.event_source') IS NULL THEN
        CREATE TYPE public.event_source AS ENUM ('client', 'server');
    END IF;
    IF to_regtype('public.device_family') IS NULL THEN
        CREATE TYPE public.device_family AS ENUM ('mobile', 'tablet', 'desktop', 'other');
    END IF;
END
$$;

DO $$
BEGIN
    IF (SELECT atttypid FROM pg_attribute
        WHERE attrelid = 'public.user_activity_events'::regclass
          AND attname = 'event_category') = 'text'::regtype THEN
        -- the CHECK constraints compare with text literals; the enum does their work now
        ALTER TABLE public.user_activity_events
            DROP CONSTRAINT IF EXISTS user_activity_events_event_category_check,
            DROP CONSTRAINT IF EXISTS user_activity_events_source_check,
            DROP CONSTRAINT IF EXISTS user_activity_events_device_type_check,
            ALTER COLUMN event_category DROP DEFAULT,
            ALTER COLUMN source DROP DEFAULT;
        -- one rewrite of the table for the three columns
        ALTER TABLE public.user_activity_events
            ALTER COLUMN event_category TYPE public.event_category
                USING event_category::public.event_category,
            ALTER COLUMN source TYPE public.event_source USING source::public.event_source,
            ALTER COLUMN device_type TYPE public.device_family
                USING device_type::public.device_family,
            ALTER COLUMN event_category SET DEFAULT 'custom',
            ALTER COLUMN source SET DEFAULT 'client';
    END IF;
END
$$;

GRANT USAGE ON TYPE public.event_category, public.event_source, public.device_family
    TO anon, authenticated, service_role;
