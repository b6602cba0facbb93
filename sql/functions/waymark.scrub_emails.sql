-- waymark.scrub_emails: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.

CREATE OR REPLACE FUNCTION waymark.scrub_emails(value text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT pg_catalog.regexp_replace(
        value,
        '[[:alnum:]._%+-]+@[[:alnum:]-]+(\.[[:alnum:]-]+)*\.[[:alpha:]]{2,}',
        '[email]', 'g')
$function$;

REVOKE ALL ON FUNCTION waymark.scrub_emails(text) FROM PUBLIC, anon;
