-- The privacy lifecycle (issue 6): anonymization marker, PII scrubbing functions and
-- the small indexes that keep `forget` from scanning whole tables under its lock.

-- When a row was anonymized. NULL = not yet; the anonymize job only touches NULL rows,
-- so a second run changes nothing. Adding a nullable column without a default is a
-- catalog-only change (no table rewrite).
ALTER TABLE public.user_activity_events    ADD COLUMN IF NOT EXISTS anonymized_at timestamptz;
ALTER TABLE public.user_sessions           ADD COLUMN IF NOT EXISTS anonymized_at timestamptz;
ALTER TABLE public.error_events            ADD COLUMN IF NOT EXISTS anonymized_at timestamptz;
ALTER TABLE public.learning_journey_events ADD COLUMN IF NOT EXISTS anonymized_at timestamptz;

-- Rows carrying a visitor hash of the current/previous salt period were received in
-- the last day or two: a BRIN on received_at (tiny; append order) lets forget find them
-- without a B-tree on every event's hash.
CREATE INDEX IF NOT EXISTS user_activity_events_received_brin
    ON public.user_activity_events USING brin (received_at);
CREATE INDEX IF NOT EXISTS error_events_received_brin
    ON public.error_events USING brin (received_at);

-- E-mail addresses and phone numbers in free text become placeholders.
-- Phone: 7–15 digits, optionally led by + or (, grouped by spaces, dots, dashes or
-- parentheses, standing alone (not part of an identifier, a UUID, a version or an
-- ISO date such as 2026-11-22).
CREATE OR REPLACE FUNCTION waymark.scrub_text(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT pg_catalog.regexp_replace(
        pg_catalog.regexp_replace(
            value,
            '[[:alnum:]._%+-]+@[[:alnum:]-]+(\.[[:alnum:]-]+)*\.[[:alpha:]]{2,}',
            '[email]', 'g'),
        '(?<![[:alnum:]_+.-])(?!\d{4}-\d{2}-\d{2})\+?\(?\d(?:[ ().-]{0,2}\d){6,14}(?![[:alnum:]_-])',
        '[phone]', 'g')
$$;

-- Only e-mail addresses: for page paths and referrers, where long digit runs are ids.
CREATE OR REPLACE FUNCTION waymark.scrub_emails(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT pg_catalog.regexp_replace(
        value,
        '[[:alnum:]._%+-]+@[[:alnum:]-]+(\.[[:alnum:]-]+)*\.[[:alpha:]]{2,}',
        '[email]', 'g')
$$;

-- A JSON document without PII: keys named in pii_keys (lower-case, compared
-- case-insensitively) are removed at any depth, every string value is scrub_text-ed,
-- numbers, booleans and everything else are kept.
CREATE OR REPLACE FUNCTION waymark.scrub_jsonb(doc jsonb, pii_keys text[]) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
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
$$;

REVOKE ALL ON FUNCTION waymark.scrub_text(text), waymark.scrub_emails(text),
    waymark.scrub_jsonb(jsonb, text[]) FROM PUBLIC;
