-- waymark.ensure_event_partitions: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.
--
-- One partition of public.user_activity_events per UTC day from first_day to last_day,
-- made where no registered partition (waymark.event_partitions) covers the day yet.
-- Events of a day with no partition wait in the default partition; when their day's
-- partition is made, they move into it in the same transaction, so no row is ever
-- refused for want of a partition. Returns how many partitions were made.
--
-- Locks: the parent SHARE UPDATE EXCLUSIVE (inserts and reads go on); the default
-- partition, briefly, while it is checked for rows of the new day.
CREATE OR REPLACE FUNCTION waymark.ensure_event_partitions(first_day date, last_day date)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
    day date;
    lo timestamptz;
    hi timestamptz;
    name text;
    made integer := 0;
BEGIN
    FOR day IN SELECT d::date FROM pg_catalog.generate_series(first_day, last_day, interval '1 day') AS d LOOP
        lo := day::timestamp AT TIME ZONE 'UTC';
        hi := (day + 1)::timestamp AT TIME ZONE 'UTC';
        CONTINUE WHEN EXISTS (SELECT 1 FROM waymark.event_partitions p
                              WHERE p.from_at < hi AND p.to_at > lo);
        name := 'user_activity_events_p' || pg_catalog.to_char(day, 'YYYYMMDD');
        EXECUTE format('CREATE TABLE public.%I (LIKE public.user_activity_events '
                       'INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
        EXECUTE format('WITH moved AS (DELETE FROM public.user_activity_events_default '
                       'WHERE occurred_at >= $1 AND occurred_at < $2 RETURNING *) '
                       'INSERT INTO public.%I SELECT * FROM moved', name) USING lo, hi;
        PERFORM waymark.prepare_event_partition(format('public.%I', name)::regclass);
        EXECUTE format('ALTER TABLE public.%I ADD CONSTRAINT %I CHECK '
                       '(occurred_at >= %L AND occurred_at < %L)', name, name || '_range', lo, hi);
        EXECUTE format('ALTER TABLE public.user_activity_events ATTACH PARTITION public.%I '
                       'FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
        INSERT INTO waymark.event_partitions (partition, from_at, to_at) VALUES (name, lo, hi);
        made := made + 1;
    END LOOP;
    RETURN made;
END
$function$;

REVOKE ALL ON FUNCTION waymark.ensure_event_partitions(date, date) FROM PUBLIC, anon, authenticated;
