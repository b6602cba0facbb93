-- waymark.scrub_text: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.

CREATE OR REPLACE FUNCTION waymark.scrub_text(value text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT pg_catalog.regexp_replace(
        pg_catalog.regexp_replace(
            value,
            '[[:alnum:]._%+-]+@[[:alnum:]-]+(\.[[:alnum:]-]+)*\.[[:alpha:]]{2,}',
            '[email]', 'g'),
        '(?<![[:alnum:]_+.-])(?!\d{4}-\d{2}-\d{2})\+?\(?\d(?:[ ().-]{0,2}\d){6,14}(?![[:alnum:]_-])',
        '[phone]', 'g')
$function$;

REVOKE ALL ON FUNCTION waymark.scrub_text(text) FROM PUBLIC, anon;
-- Pure text in, text out (no table access): answers that read client text as the caller
-- (the attribution's UTM values) scrub it on the way.
GRANT EXECUTE ON FUNCTION waymark.scrub_text(text) TO authenticated;
