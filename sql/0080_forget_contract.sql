-- The forget contract in one place (docs/privacy.md, "Forget"): the advisory lock that
-- writers take shared and forget takes exclusively, and the tombstone test every insert of
-- user rows passes. Python calls these functions; the lock's key and the tombstone's hash
-- are written nowhere else.

CREATE OR REPLACE FUNCTION waymark.user_id_hash(user_id uuid)
RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = ''
AS $$ SELECT sha256(convert_to(lower(user_id::text), 'UTF8')) $$;

CREATE OR REPLACE FUNCTION waymark.is_forgotten(user_id uuid)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT user_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM waymark.forgotten_users f
        WHERE f.user_id_hash = sha256(convert_to(lower(user_id::text), 'UTF8'))
          AND f.expires_at > now())
$$;

CREATE OR REPLACE FUNCTION waymark.lock_forget_shared()
RETURNS void LANGUAGE sql
AS $$ SELECT pg_advisory_xact_lock_shared(22433, 3846) $$;

CREATE OR REPLACE FUNCTION waymark.lock_forget_exclusive()
RETURNS void LANGUAGE sql
AS $$ SELECT pg_advisory_xact_lock(22433, 3846) $$;

REVOKE ALL ON FUNCTION waymark.user_id_hash(uuid), waymark.is_forgotten(uuid),
    waymark.lock_forget_shared(), waymark.lock_forget_exclusive() FROM PUBLIC;
