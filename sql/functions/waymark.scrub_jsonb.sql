-- waymark.scrub_jsonb: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.

CREATE OR REPLACE FUNCTION waymark.scrub_jsonb(doc jsonb, pii_keys text[])
 RETURNS jsonb
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE
AS $function$
DECLARE
    result jsonb;
BEGIN
    CASE pg_catalog.jsonb_typeof(doc)
    WHEN 'object' THEN
        SELECT coalesce(pg_catalog.jsonb_object_agg(e.key, waymark.scrub_jsonb(e.value, pii_keys)),
                        '{}'::jsonb)
          INTO result
          FROM pg_catalog.jsonb_each(doc) AS e
         WHERE pg_catalog.lower(e.key) <> ALL (pii_keys);
        RETURN result;
    WHEN 'array' THEN
        SELECT coalesce(pg_catalog.jsonb_agg(waymark.scrub_jsonb(e.value, pii_keys) ORDER BY e.ord),
                        '[]'::jsonb)
          INTO result
          FROM pg_catalog.jsonb_array_elements(doc) WITH ORDINALITY AS e(value, ord);
        RETURN result;
    WHEN 'string' THEN
        RETURN pg_catalog.to_jsonb(waymark.scrub_text(doc #>> '{}'));
    ELSE
        RETURN doc;
    END CASE;
END
$function$;

REVOKE ALL ON FUNCTION waymark.scrub_jsonb(jsonb, text[]) FROM PUBLIC, anon;
