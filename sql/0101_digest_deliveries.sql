-- Weekly digests (docs/alerts.md): one row per recipient and week, the key that makes
-- `waymark digest` send each digest once (re-runs and concurrent runs included). Ids,
-- status and attempts only: no address, no body. A recipient reads their own rows (so
-- their export includes them), admins all; only the job writes.

CREATE TABLE IF NOT EXISTS public.digest_deliveries (
    delivery_id    uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    recipient_id   uuid,
    recipient_role text        CHECK (recipient_role IN ('teacher', 'parent')),
    week_start     date        NOT NULL,
    status         text        NOT NULL DEFAULT 'sending'
                   CHECK (status IN ('sending', 'delivered', 'failed', 'skipped')),
    attempts       integer     NOT NULL DEFAULT 1,
    students       integer     NOT NULL DEFAULT 0,
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    delivered_at   timestamptz,
    UNIQUE (recipient_id, week_start)
);

ALTER TABLE public.digest_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.digest_deliveries FORCE ROW LEVEL SECURITY;
REVOKE ALL ON public.digest_deliveries FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.digest_deliveries TO authenticated;

DROP POLICY IF EXISTS "Recipients read their own digests, admins all" ON public.digest_deliveries;
CREATE POLICY "Recipients read their own digests, admins all"
    ON public.digest_deliveries FOR SELECT TO authenticated
    USING (recipient_id = (select auth.uid()) OR (select waymark.is_admin()));
