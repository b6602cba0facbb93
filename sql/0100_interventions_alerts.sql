-- Interventions and alerts: from a risk score to a person who acts, and back
-- (docs/alerts.md).
--
--   interventions     what a teacher, parent or admin did about a student. Read by whoever
--                     may see the student (the same helper as every student table); written
--                     by the caller themself under RLS: a teacher or parent only about a
--                     student they may see, an admin about anyone, always as themself.
--   alert_crossings   a student's stored risk crossing the alert threshold (in or out):
--                     one row per student, direction and assessment day (the idempotency key
--                     of `waymark alerts`), with when the current flagged run began (lead time).
--   alert_deliveries  one row per alert to send or sent: crossing, channel, recipient id,
--                     status, attempts. No addresses, no message bodies.
--
-- The alert tables are written by the jobs only (no write grant); a user reads the
-- crossings of students they may see and the deliveries addressed to them (so the export,
-- read as the caller, includes them). Forget removes their rows like any other row naming
-- the person (uuid columns, read from the catalog).

CREATE TABLE IF NOT EXISTS public.interventions (
    intervention_id uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id      uuid,
    actor_id        uuid,
    actor_role      text        CHECK (actor_role IN ('teacher', 'parent', 'admin')),
    action          text        NOT NULL
                    CHECK (action IN ('acknowledged', 'contacted', 'not_useful', 'resolved')),
    note            text        CHECK (length(note) <= 2000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    anonymized_at   timestamptz
);
CREATE INDEX IF NOT EXISTS interventions_student ON public.interventions (student_id, created_at);
CREATE INDEX IF NOT EXISTS interventions_actor ON public.interventions (actor_id);
CREATE INDEX IF NOT EXISTS interventions_created ON public.interventions (created_at);

CREATE TABLE IF NOT EXISTS public.alert_crossings (
    crossing_id      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id       uuid,
    direction        text        NOT NULL CHECK (direction IN ('entered', 'left')),
    assessed_on      date        NOT NULL,
    risk_score       float8      NOT NULL,
    previous_score   float8,
    threshold        float8      NOT NULL,
    factors          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    first_flagged_at timestamptz,
    detected_at      timestamptz NOT NULL DEFAULT now(),
    anonymized_at    timestamptz,
    UNIQUE (student_id, direction, assessed_on)
);
CREATE INDEX IF NOT EXISTS alert_crossings_detected ON public.alert_crossings (detected_at);

CREATE TABLE IF NOT EXISTS public.alert_deliveries (
    delivery_id     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    crossing_id     uuid        NOT NULL
                    REFERENCES public.alert_crossings (crossing_id) ON DELETE CASCADE,
    channel         text        NOT NULL CHECK (channel IN ('webhook', 'email')),
    recipient_id    uuid,
    recipient_role  text        CHECK (recipient_role IN ('teacher', 'parent', 'admin')),
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'delivered', 'failed', 'skipped')),
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_at      timestamptz,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    anonymized_at   timestamptz,
    UNIQUE NULLS NOT DISTINCT (crossing_id, channel, recipient_id)
);
CREATE INDEX IF NOT EXISTS alert_deliveries_due ON public.alert_deliveries (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS alert_deliveries_recipient ON public.alert_deliveries (recipient_id);

ALTER TABLE public.interventions    ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.interventions    FORCE ROW LEVEL SECURITY;
ALTER TABLE public.alert_crossings  ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.alert_crossings  FORCE ROW LEVEL SECURITY;
ALTER TABLE public.alert_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.alert_deliveries FORCE ROW LEVEL SECURITY;

REVOKE ALL ON public.interventions, public.alert_crossings, public.alert_deliveries
    FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT ON public.interventions TO authenticated;
GRANT SELECT ON public.alert_crossings, public.alert_deliveries TO authenticated;

DROP POLICY IF EXISTS "Users read their own crossings and their students', admins all"
    ON public.alert_crossings;
CREATE POLICY "Users read their own crossings and their students', admins all"
    ON public.alert_crossings FOR SELECT TO authenticated
    USING (student_id = (select auth.uid())
           OR student_id = ANY ((select waymark.visible_students())::uuid[])
           OR (select waymark.is_admin()));

DROP POLICY IF EXISTS "Recipients read deliveries addressed to them, admins all"
    ON public.alert_deliveries;
CREATE POLICY "Recipients read deliveries addressed to them, admins all"
    ON public.alert_deliveries FOR SELECT TO authenticated
    USING (recipient_id = (select auth.uid()) OR (select waymark.is_admin()));

DROP POLICY IF EXISTS "Users read interventions about themselves and their students', admins all"
    ON public.interventions;
CREATE POLICY "Users read interventions about themselves and their students', admins all"
    ON public.interventions FOR SELECT TO authenticated
    USING (student_id = (select auth.uid())
           OR student_id = ANY ((select waymark.visible_students())::uuid[])
           OR (select waymark.is_admin()));

DROP POLICY IF EXISTS "Teachers and parents record interventions about their students, admins any"
    ON public.interventions;
CREATE POLICY "Teachers and parents record interventions about their students, admins any"
    ON public.interventions FOR INSERT TO authenticated
    WITH CHECK (actor_id = (select auth.uid())
                AND actor_role = (select waymark.app_role())
                AND ((select waymark.is_admin())
                     OR ((select waymark.app_role()) IN ('teacher', 'parent')
                         AND student_id = ANY ((select waymark.visible_students())::uuid[]))));
