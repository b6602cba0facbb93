-- An admin reads every class's cohort medians, as 0141 says and meant: its policy asked only
-- waymark.visible_classes(), which is empty for an admin (policies test waymark.is_admin()
-- for that), so an admin's live score of one student (the engagement answer, the student
-- detail) compared them with every student instead of their class, and disagreed with the
-- stored nightly score. Found when the factors' sentences began to name the cohort.
DROP POLICY IF EXISTS "Signed-in users read the medians they may compare with"
    ON public.risk_cohort_medians;
CREATE POLICY "Signed-in users read the medians they may compare with"
    ON public.risk_cohort_medians FOR SELECT TO authenticated
    USING (class_id IS NULL OR (select waymark.is_admin())
           OR class_id = ANY ((select waymark.visible_classes())::uuid[]));
