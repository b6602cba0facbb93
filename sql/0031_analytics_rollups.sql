-- Daily rollups beside page_view_analytics so admin answers over many events stay fast:
-- events per category and quest views/starts/completions per UTC day, plus the list of
-- days already rolled up (a rolled day with no rows means "nothing happened", not
-- "not computed yet"). Aggregates over everyone: admins read them, nobody else.

CREATE TABLE IF NOT EXISTS public.rollup_days (
    day         date PRIMARY KEY,
    computed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE public.rollup_days IS
    'UTC days whose rollup rows (page_view_analytics, event_category_daily, quest_daily) are complete.';

CREATE TABLE IF NOT EXISTS public.event_category_daily (
    day            date NOT NULL,
    event_category text NOT NULL,
    events         bigint NOT NULL CHECK (events >= 0),
    PRIMARY KEY (day, event_category)
);

CREATE TABLE IF NOT EXISTS public.quest_daily (
    day         date NOT NULL,
    quest_id    text NOT NULL,
    quest_title text,
    views       bigint NOT NULL DEFAULT 0 CHECK (views >= 0),
    starts      bigint NOT NULL DEFAULT 0 CHECK (starts >= 0),
    completions bigint NOT NULL DEFAULT 0 CHECK (completions >= 0),
    PRIMARY KEY (day, quest_id)
);

ALTER TABLE public.rollup_days          ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.rollup_days          FORCE ROW LEVEL SECURITY;
ALTER TABLE public.event_category_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.event_category_daily FORCE ROW LEVEL SECURITY;
ALTER TABLE public.quest_daily          ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.quest_daily          FORCE ROW LEVEL SECURITY;

REVOKE ALL ON public.rollup_days, public.event_category_daily, public.quest_daily
    FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.rollup_days, public.event_category_daily, public.quest_daily
    TO authenticated;

DROP POLICY IF EXISTS "Admins read which days are rolled up" ON public.rollup_days;
CREATE POLICY "Admins read which days are rolled up"
    ON public.rollup_days FOR SELECT TO authenticated
    USING ((select waymark.is_admin()));

DROP POLICY IF EXISTS "Admins read daily event counts" ON public.event_category_daily;
CREATE POLICY "Admins read daily event counts"
    ON public.event_category_daily FOR SELECT TO authenticated
    USING ((select waymark.is_admin()));

DROP POLICY IF EXISTS "Admins read daily quest figures" ON public.quest_daily;
CREATE POLICY "Admins read daily quest figures"
    ON public.quest_daily FOR SELECT TO authenticated
    USING ((select waymark.is_admin()));
