-- The cohort's median shares of work due that was missed and handed in late, for the
-- factors missed_more_than_cohort and late_more_than_cohort (docs/risk.md, cohort
-- factors): stored by `waymark score` beside the other medians, read under the same
-- policy (aggregates over 5 or more students). NULL: no student of the cohort had work due.

ALTER TABLE public.risk_cohort_medians
    ADD COLUMN IF NOT EXISTS median_missed_share double precision,
    ADD COLUMN IF NOT EXISTS median_late_share   double precision;
