-- waymark.try_timestamptz, rewritten without an exception handler. 0050's plpgsql
-- version caught cast errors, which needs a subtransaction, and PostgreSQL refuses
-- subtransactions while any parallel query runs ("cannot start subtransactions during
-- a parallel operation"). This version validates first and casts only what is valid:
-- ISO 8601 dates (optionally with time and offset), with the day checked against the
-- month's length. It is plain SQL, so it is parallel safe and can be inlined.

CREATE OR REPLACE FUNCTION waymark.try_timestamptz(value text) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN value !~ '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?)?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?$'
            THEN NULL
        WHEN substr(value, 9, 2)::int > extract(day FROM make_date(
                substr(value, 1, 4)::int, substr(value, 6, 2)::int, 1)
                + interval '1 month - 1 day')::int
            THEN NULL
        ELSE value::timestamptz
    END
$$;

REVOKE ALL ON FUNCTION waymark.try_timestamptz(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION waymark.try_timestamptz(text) TO authenticated, service_role;
