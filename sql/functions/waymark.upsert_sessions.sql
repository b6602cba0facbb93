-- waymark.upsert_sessions: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.
--
-- A batch's session segments into user_sessions (backend/services/ingest/session_segments.py):
-- a new session is inserted; a segment continuing a stored session adds its counts and widens
-- its span. The segments come as one JSON document, encoded in C by the writer.
-- PL/pgSQL for the same reason as waymark.open_sessions: its plan is kept for the connection.

CREATE OR REPLACE FUNCTION waymark.upsert_sessions(segments json)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
#variable_conflict use_column
BEGIN
    INSERT INTO public.user_sessions AS us (
        session_id, user_id, visitor_hash, started_at, last_seen_at, duration_seconds,
        page_count, event_count, is_bounce, is_app_launch, browser, os, device_type,
        entry_page, exit_page, referrer, utm_source, utm_medium, utm_campaign)
    SELECT s.session_id, s.user_id, decode(s.visitor_hash, 'hex'), s.started_at,
           s.last_seen_at, extract(epoch FROM s.last_seen_at - s.started_at)::integer,
           s.page_count, s.event_count, s.page_count <= 1, s.is_app_launch, s.browser, s.os,
           s.device_type, s.entry_page, s.exit_page, s.referrer, s.utm_source, s.utm_medium,
           s.utm_campaign
    FROM json_to_recordset(segments) AS s(
           session_id uuid, user_id uuid, visitor_hash text, started_at timestamptz,
           last_seen_at timestamptz, page_count int, event_count int, is_app_launch boolean,
           browser text, os text, device_type text, entry_page text, exit_page text,
           referrer text, utm_source text, utm_medium text, utm_campaign text)
    ON CONFLICT (session_id) DO UPDATE SET
        started_at = least(us.started_at, EXCLUDED.started_at),
        last_seen_at = greatest(us.last_seen_at, EXCLUDED.last_seen_at),
        duration_seconds = extract(epoch FROM greatest(us.last_seen_at, EXCLUDED.last_seen_at)
                                            - least(us.started_at, EXCLUDED.started_at))::integer,
        page_count = us.page_count + EXCLUDED.page_count,
        event_count = us.event_count + EXCLUDED.event_count,
        is_bounce = us.page_count + EXCLUDED.page_count <= 1,
        entry_page = CASE WHEN EXCLUDED.started_at < us.started_at OR us.entry_page IS NULL
                          THEN coalesce(EXCLUDED.entry_page, us.entry_page) ELSE us.entry_page END,
        exit_page = CASE WHEN EXCLUDED.last_seen_at >= us.last_seen_at
                         THEN coalesce(EXCLUDED.exit_page, us.exit_page) ELSE us.exit_page END,
        referrer = coalesce(us.referrer, EXCLUDED.referrer),
        utm_source = coalesce(us.utm_source, EXCLUDED.utm_source),
        utm_medium = coalesce(us.utm_medium, EXCLUDED.utm_medium),
        utm_campaign = coalesce(us.utm_campaign, EXCLUDED.utm_campaign),
        browser = coalesce(us.browser, EXCLUDED.browser),
        os = coalesce(us.os, EXCLUDED.os),
        device_type = coalesce(us.device_type, EXCLUDED.device_type);
END
$function$;

REVOKE ALL ON FUNCTION waymark.upsert_sessions(json) FROM PUBLIC, anon;
