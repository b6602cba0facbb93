-- page-views computes today live from its page views (a sort of every page view of the
-- day by session and time, for entries and bounces, and the distinct visitors): ~1 s at
-- 10M events. The hourly `waymark rollup` step keeps today's state up to the last closed
-- hour (the "prefix"), so only the page views since then are read live and merged:
--
--   page_view_prefix           which day, up to which hour, computed when
--   page_view_prefix_pages     per page: the sums page_view_analytics keeps for a day
--                              (pages with exits but no views included: the merge needs them)
--   page_view_prefix_sessions  per session key: entry page and views (entries, bounces)
--   page_view_prefix_visitors  distinct (page, visitor hash) pairs (unique visitors)
--
-- Only today's rows are kept (the job deletes earlier days'). Aggregates over everyone:
-- admins read them, nobody else.

CREATE TABLE IF NOT EXISTS public.page_view_prefix (
    day         date PRIMARY KEY,
    through     timestamptz NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE public.page_view_prefix IS
    'The page_view_prefix_* rows of day cover its page views and exits before through.';

CREATE TABLE IF NOT EXISTS public.page_view_prefix_pages (
    day                  date NOT NULL,
    page_path            text NOT NULL,
    total_views          bigint NOT NULL CHECK (total_views >= 0),
    unique_visitors      bigint NOT NULL CHECK (unique_visitors >= 0),
    sessions_entered     bigint NOT NULL CHECK (sessions_entered >= 0),
    bounces              bigint NOT NULL CHECK (bounces >= 0),
    load_time_samples    bigint NOT NULL CHECK (load_time_samples >= 0),
    load_time_sum_ms     bigint NOT NULL,
    time_on_page_samples bigint NOT NULL CHECK (time_on_page_samples >= 0),
    time_on_page_sum_ms  bigint NOT NULL,
    PRIMARY KEY (day, page_path)
);

CREATE TABLE IF NOT EXISTS public.page_view_prefix_sessions (
    day         date NOT NULL,
    session_key uuid NOT NULL,
    entry_page  text NOT NULL,
    views       bigint NOT NULL CHECK (views > 0),
    PRIMARY KEY (day, session_key)
);
COMMENT ON COLUMN public.page_view_prefix_sessions.session_key IS
    'coalesce(session_id, event_id) of the page views, as page-views groups sessions.';

CREATE TABLE IF NOT EXISTS public.page_view_prefix_visitors (
    day          date NOT NULL,
    page_path    text NOT NULL,
    visitor_hash bytea NOT NULL,
    PRIMARY KEY (day, page_path, visitor_hash)
);

ALTER TABLE public.page_view_prefix          ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.page_view_prefix          FORCE ROW LEVEL SECURITY;
ALTER TABLE public.page_view_prefix_pages    ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.page_view_prefix_pages    FORCE ROW LEVEL SECURITY;
ALTER TABLE public.page_view_prefix_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.page_view_prefix_sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE public.page_view_prefix_visitors ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.page_view_prefix_visitors FORCE ROW LEVEL SECURITY;

REVOKE ALL ON public.page_view_prefix, public.page_view_prefix_pages,
              public.page_view_prefix_sessions, public.page_view_prefix_visitors
    FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.page_view_prefix, public.page_view_prefix_pages,
                public.page_view_prefix_sessions, public.page_view_prefix_visitors
    TO authenticated;

DROP POLICY IF EXISTS "Admins read how far today's page views are rolled up"
    ON public.page_view_prefix;
CREATE POLICY "Admins read how far today's page views are rolled up"
    ON public.page_view_prefix FOR SELECT TO authenticated
    USING ((select waymark.is_admin()));

DROP POLICY IF EXISTS "Admins read today's rolled-up page figures"
    ON public.page_view_prefix_pages;
CREATE POLICY "Admins read today's rolled-up page figures"
    ON public.page_view_prefix_pages FOR SELECT TO authenticated
    USING ((select waymark.is_admin()));

DROP POLICY IF EXISTS "Admins read today's rolled-up sessions"
    ON public.page_view_prefix_sessions;
CREATE POLICY "Admins read today's rolled-up sessions"
    ON public.page_view_prefix_sessions FOR SELECT TO authenticated
    USING ((select waymark.is_admin()));

DROP POLICY IF EXISTS "Admins read today's rolled-up page visitors"
    ON public.page_view_prefix_visitors;
CREATE POLICY "Admins read today's rolled-up page visitors"
    ON public.page_view_prefix_visitors FOR SELECT TO authenticated
    USING ((select waymark.is_admin()));
