-- BRIN on the time columns of the big append-only tables (tiny, and time-ordered
-- inserts keep them effective); B-tree where RLS and analytics filter by user or type.

CREATE INDEX IF NOT EXISTS user_activity_events_occurred_brin
    ON public.user_activity_events USING brin (occurred_at);
CREATE INDEX IF NOT EXISTS user_activity_events_user_time
    ON public.user_activity_events (user_id, occurred_at) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS user_activity_events_type_time
    ON public.user_activity_events (event_type, occurred_at);
CREATE INDEX IF NOT EXISTS user_activity_events_data_gin
    ON public.user_activity_events USING gin (event_data jsonb_path_ops);

CREATE INDEX IF NOT EXISTS user_sessions_started_brin
    ON public.user_sessions USING brin (started_at);
CREATE INDEX IF NOT EXISTS user_sessions_user_time
    ON public.user_sessions (user_id, started_at) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS user_sessions_visitor_seen
    ON public.user_sessions (visitor_hash, last_seen_at) WHERE visitor_hash IS NOT NULL;

CREATE INDEX IF NOT EXISTS learning_journey_events_user_time
    ON public.learning_journey_events (user_id, occurred_at);
CREATE INDEX IF NOT EXISTS learning_journey_events_occurred_brin
    ON public.learning_journey_events USING brin (occurred_at);

CREATE INDEX IF NOT EXISTS error_events_occurred_brin
    ON public.error_events USING brin (occurred_at);
CREATE INDEX IF NOT EXISTS error_events_user_time
    ON public.error_events (user_id, occurred_at) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS error_events_group_time
    ON public.error_events (group_id, occurred_at);

CREATE INDEX IF NOT EXISTS guardian_links_student
    ON public.guardian_links (student_id);
CREATE INDEX IF NOT EXISTS privacy_audit_occurred
    ON public.privacy_audit (occurred_at);
