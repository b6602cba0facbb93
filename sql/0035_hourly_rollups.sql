-- Today's closed hours, rolled up for the additive answers (events per category, quest
-- views/starts/completions), so only the current hour is computed live. Page views have
-- no hourly rollup: unique visitors and bounces are per day and per session, not sums.
-- Rows of past days are deleted by the rollup job once the day itself is rolled up.

CREATE TABLE IF NOT EXISTS public.rollup_hours (
    hour        timestamptz PRIMARY KEY,
    computed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.event_category_hourly (
    hour           timestamptz NOT NULL,
    event_category text NOT NULL,
    events         bigint NOT NULL CHECK (events >= 0),
    PRIMARY KEY (hour, event_category)
);

CREATE TABLE IF NOT EXISTS public.quest_hourly (
    hour        timestamptz NOT NULL,
    quest_id    text NOT NULL,
    quest_title text,
    views       bigint NOT NULL DEFAULT 0 CHECK (views >= 0),
    starts      bigint NOT NULL DEFAULT 0 CHECK (starts >= 0),
    completions bigint NOT NULL DEFAULT 0 CHECK (completions >= 0),
    PRIMARY KEY (hour, quest_id)
);

ALTER TABLE public.rollup_hours          ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.rollup_hours          FORCE ROW LEVEL SECURITY;
ALTER TABLE public.event_category_hourly ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.event_category_hourly FORCE ROW LEVEL SECURITY;
ALTER TABLE public.quest_hourly          ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.quest_hourly          FORCE ROW LEVEL SECURITY;

REVOKE ALL ON public.rollup_hours, public.event_category_hourly, public.quest_hourly
    FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.rollup_hours, public.event_category_hourly, public.quest_hourly
    TO authenticated;

DROP POLICY IF EXISTS "Admins read which hours are rolled up" ON public.rollup_hours;
CREATE POLICY "Admins read which hours are rolled up"
    ON public.rollup_hours FOR SELECT TO authenticated
    USING ((select waymark.is_admin()));

DROP POLICY IF EXISTS "Admins read hourly event counts" ON public.event_category_hourly;
CREATE POLICY "Admins read hourly event counts"
    ON public.event_category_hourly FOR SELECT TO authenticated
    USING ((select waymark.is_admin()));

DROP POLICY IF EXISTS "Admins read hourly quest figures" ON public.quest_hourly;
CREATE POLICY "Admins read hourly quest figures"
    ON public.quest_hourly FOR SELECT TO authenticated
    USING ((select waymark.is_admin()));
