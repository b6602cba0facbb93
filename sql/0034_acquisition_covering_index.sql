-- Attribution reads every landing visit and conversion of its window. A small partial
-- index carrying the columns it needs (and user_id, which the RLS policy reads) lets
-- PostgreSQL answer from the index alone once autovacuum has marked the pages visible,
-- instead of one heap page per visit spread over 30 days of events.
CREATE INDEX IF NOT EXISTS user_activity_events_acquisition
    ON public.user_activity_events (event_type, occurred_at)
    INCLUDE (network_hash, utm_source, utm_medium, utm_campaign, event_id, user_id)
    WHERE event_type IN ('landing_visit', 'conversion');
