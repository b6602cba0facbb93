-- waymark.lock_forget_exclusive: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.

CREATE OR REPLACE FUNCTION waymark.lock_forget_exclusive()
 RETURNS void
 LANGUAGE sql
AS $function$ SELECT pg_advisory_xact_lock(22433, 3846) $function$;

REVOKE ALL ON FUNCTION waymark.lock_forget_exclusive() FROM PUBLIC, anon;
