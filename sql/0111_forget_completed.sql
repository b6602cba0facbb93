-- A forget that has finished marks its tombstone (docs/privacy.md): while the tombstone
-- lives, the writer keeps dropping the user's events, so there is nothing new to delete and
-- a repeated forget is answered from the tombstone without the exclusive writer lock (a
-- self-forget in a loop used to hold that lock most of the time). A forget that died half
-- way leaves the mark empty, and the next one runs in full.
ALTER TABLE waymark.forgotten_users ADD COLUMN IF NOT EXISTS completed_at timestamptz;
