-- Risk parameter sets fitted by `waymark risk-calibrate` on the deployment's own history
-- (docs/risk.md, "Self-calibration"). One row per adopted set: the parameters, when and
-- on which data window it was fitted, its held-out figures against the set it replaced.
-- At most one row is active; `waymark score` scores with it (falling back to
-- WAYMARK_RISK_* when none is), and a roll back makes the previous set active again.
-- Only jobs (the service role) read or write it: answers carry the set's id, fitted_at
-- and validation AUC inside each stored assessment, so no API role needs the table.

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
REVOKE ALL ON public.risk_parameter_sets FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON public.risk_parameter_sets FROM anon, authenticated;
    END IF;
END $$;
