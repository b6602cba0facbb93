-- waymark.try_timestamptz: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.

CREATE OR REPLACE FUNCTION waymark.try_timestamptz(value text)
 RETURNS timestamp with time zone
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$
    SELECT CASE
        WHEN value !~ '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?)?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?$'
            THEN NULL
        WHEN substr(value, 9, 2)::int > extract(day FROM make_date(
                substr(value, 1, 4)::int, substr(value, 6, 2)::int, 1)
                + interval '1 month - 1 day')::int
            THEN NULL
        ELSE value::timestamptz
    END
$function$;

REVOKE ALL ON FUNCTION waymark.try_timestamptz(text) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION waymark.try_timestamptz(text) TO authenticated, service_role;
