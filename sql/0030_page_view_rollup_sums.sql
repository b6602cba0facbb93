-- The page-view rollup keeps sums and sample counts beside the averages of DESIGN §3, so
-- closed days from the rollup and today's live numbers combine into exact averages over
-- any period (an average of averages would weight a quiet day like a busy one).

ALTER TABLE public.page_view_analytics
    ADD COLUMN IF NOT EXISTS sessions_entered     integer NOT NULL DEFAULT 0 CHECK (sessions_entered >= 0),
    ADD COLUMN IF NOT EXISTS bounces              integer NOT NULL DEFAULT 0 CHECK (bounces >= 0),
    ADD COLUMN IF NOT EXISTS load_time_samples    integer NOT NULL DEFAULT 0 CHECK (load_time_samples >= 0),
    ADD COLUMN IF NOT EXISTS load_time_sum_ms     bigint  NOT NULL DEFAULT 0 CHECK (load_time_sum_ms >= 0),
    ADD COLUMN IF NOT EXISTS time_on_page_samples integer NOT NULL DEFAULT 0 CHECK (time_on_page_samples >= 0),
    ADD COLUMN IF NOT EXISTS time_on_page_sum_ms  bigint  NOT NULL DEFAULT 0 CHECK (time_on_page_sum_ms >= 0);

COMMENT ON COLUMN public.page_view_analytics.sessions_entered IS
    'Sessions whose first page view of the day was this page (the bounce-rate denominator).';
COMMENT ON COLUMN public.page_view_analytics.bounces IS
    'Of those, sessions with exactly one page view that day.';
