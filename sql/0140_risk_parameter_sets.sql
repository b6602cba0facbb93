-- Risk parameter sets fitted by `waymark risk-calibrate` on the deployment's own history
-- (docs/risk.md, "Self-calibration"). One row per adopted set: the parameters, when and
-- on which data window it was fitted, its held-out figures against the set it replaced.
-- At most one row is active; `waymark score` scores with it (falling back to
-- WAYMARK_RISK_* when none is), and a roll back makes the previous set active again.
-- Only jobs (the service role) write it; answers name the active set (id, fitted_at,
-- validation AUC), so signed-in roles may read it (see the policy below).

CREATE TABLE IF NOT EXISTS public.risk_parameter_sets (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    params          jsonb       NOT NULL,
    fitted_at       timestamptz NOT NULL,
    outcome         text        NOT NULL,
    fit_at          timestamptz NOT NULL,
    validate_at     timestamptz NOT NULL,
    validated_until timestamptz NOT NULL,
    validation      jsonb       NOT NULL,
    active          boolean     NOT NULL DEFAULT false,
    retired_at      timestamptz
);

CREATE UNIQUE INDEX IF NOT EXISTS risk_parameter_sets_one_active
    ON public.risk_parameter_sets (active) WHERE active;

ALTER TABLE public.risk_parameter_sets ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.risk_parameter_sets FORCE ROW LEVEL SECURITY;
REVOKE ALL ON public.risk_parameter_sets FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON public.risk_parameter_sets FROM anon, authenticated;
    END IF;
END $$;

-- Answers name the set that scored them (id, fitted_at, validation AUC), read with the
-- caller's connection: the sets hold no personal data, so every signed-in role may read
-- them; only the service role writes.
GRANT SELECT ON public.risk_parameter_sets TO authenticated;
DROP POLICY IF EXISTS "Signed-in users read the risk parameter sets" ON public.risk_parameter_sets;
CREATE POLICY "Signed-in users read the risk parameter sets" ON public.risk_parameter_sets
    FOR SELECT TO authenticated USING (true);
