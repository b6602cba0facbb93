-- attribution links a conversion to the latest landing visit with the same network hash
-- in the same salt period. With WAYMARK_SALT_PERIOD=day (the default) no link crosses a
-- UTC day, so a closed day's figures per campaign are final and add up over days:
-- visits, distinct (network hash, day) pairs and linked conversions. `waymark rollup`
-- writes them with the day's other rollups; attribution reads the closed days that lie
-- wholly inside its window from here and computes the rest (the window's first, partial
-- day and today) live. With a monthly salt links cross days: the answer stays live.
--
-- rollup_days.campaigns marks the days whose campaign rows are complete (days rolled up
-- before this migration have none: the job computes them again).

ALTER TABLE public.rollup_days ADD COLUMN IF NOT EXISTS campaigns boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN public.rollup_days.campaigns IS
    'The day''s campaign_daily rows are complete too.';

CREATE TABLE IF NOT EXISTS public.campaign_daily (
    day             date NOT NULL,
    campaign        text NOT NULL,
    source          text NOT NULL,
    medium          text NOT NULL,
    visits          bigint NOT NULL CHECK (visits >= 0),
    unique_networks bigint NOT NULL CHECK (unique_networks >= 0),
    conversions     bigint NOT NULL CHECK (conversions >= 0),
    PRIMARY KEY (day, campaign, source, medium)
);
COMMENT ON TABLE public.campaign_daily IS
    'Landing visits, distinct network hashes and last-touch conversions per campaign and '
    'closed UTC day, linked within the day (WAYMARK_SALT_PERIOD=day).';

ALTER TABLE public.campaign_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.campaign_daily FORCE ROW LEVEL SECURITY;

REVOKE ALL ON public.campaign_daily FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.campaign_daily TO authenticated;

DROP POLICY IF EXISTS "Admins read daily campaign figures" ON public.campaign_daily;
CREATE POLICY "Admins read daily campaign figures"
    ON public.campaign_daily FOR SELECT TO authenticated
    USING ((select waymark.is_admin()));
