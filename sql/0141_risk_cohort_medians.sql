-- The cohort medians of the last `waymark score` (docs/risk.md, cohort factors): one row for
-- every student together (class_id NULL) and one per class of at least 5 scored students.
-- A score computed live for one student (the engagement answer) compares them with these,
-- so it agrees with the stored nightly score. Medians over 5 or more students are
-- aggregates: a signed-in user reads the population's row and their visible classes' rows
-- (waymark.visible_classes(): a student's own classes, a parent's children's, a teacher's
-- taught classes, every class for an admin). Only the service role writes.

CREATE TABLE IF NOT EXISTS public.risk_cohort_medians (
    class_id           uuid REFERENCES public.classes (class_id) ON DELETE CASCADE,
    median_active_days double precision,
    median_xp          double precision,
    students           integer     NOT NULL CHECK (students >= 0),
    computed_at        timestamptz NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS risk_cohort_medians_scope
    ON public.risk_cohort_medians (coalesce(class_id, '00000000-0000-0000-0000-000000000000'));

ALTER TABLE public.risk_cohort_medians ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.risk_cohort_medians FORCE ROW LEVEL SECURITY;
REVOKE ALL ON public.risk_cohort_medians FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON public.risk_cohort_medians FROM anon, authenticated;
    END IF;
END $$;
GRANT SELECT ON public.risk_cohort_medians TO authenticated;
DROP POLICY IF EXISTS "Signed-in users read the medians they may compare with"
    ON public.risk_cohort_medians;
CREATE POLICY "Signed-in users read the medians they may compare with"
    ON public.risk_cohort_medians FOR SELECT TO authenticated
    USING (class_id IS NULL OR class_id = ANY ((select waymark.visible_classes())::uuid[]));
