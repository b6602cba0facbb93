-- Short-lived tombstones so that an event for a forgotten user that is still in some
-- process's writer queue cannot bring them back. Only a SHA-256 of the user id is
-- kept, for minutes (see backend/services/tombstones.py), in the private schema.

CREATE TABLE IF NOT EXISTS waymark.forgotten_users (
    user_id_hash bytea PRIMARY KEY,
    forgotten_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS forgotten_users_expires ON waymark.forgotten_users (expires_at);
REVOKE ALL ON waymark.forgotten_users FROM PUBLIC;
