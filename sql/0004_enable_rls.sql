-- Row-level security is on, and forced (the owner obeys it too), for every table in
-- public. With no policy yet nobody but a BYPASSRLS role (service_role, superuser)
-- sees a row; the policies come in their own migration.

ALTER TABLE public.user_activity_events    ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.user_activity_events    FORCE ROW LEVEL SECURITY;
ALTER TABLE public.user_sessions           ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.user_sessions           FORCE ROW LEVEL SECURITY;
ALTER TABLE public.page_view_analytics     ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.page_view_analytics     FORCE ROW LEVEL SECURITY;
ALTER TABLE public.learning_journey_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.learning_journey_events FORCE ROW LEVEL SECURITY;
ALTER TABLE public.error_groups            ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.error_groups            FORCE ROW LEVEL SECURITY;
ALTER TABLE public.error_events            ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.error_events            FORCE ROW LEVEL SECURITY;
ALTER TABLE public.tracking_salts          ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.tracking_salts          FORCE ROW LEVEL SECURITY;
ALTER TABLE public.privacy_audit           ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.privacy_audit           FORCE ROW LEVEL SECURITY;
ALTER TABLE public.guardian_links          ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.guardian_links          FORCE ROW LEVEL SECURITY;

-- The API roles get nothing by default; the policies migration grants what it allows.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM anon, authenticated;
REVOKE ALL ON SCHEMA waymark FROM PUBLIC;
