-- waymark.ensure_event_partitions: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.
--
-- One partition of public.user_activity_events per ISO week (Monday 00:00 UTC to the next
-- Monday) for every week from first_day's to last_day's, made where no registered
-- partition (waymark.event_partitions) overlaps the week yet. Events of a week with no
-- partition wait in the default partition; when their week's partition is made, they move
-- into it in the same transaction, so no row is ever refused for want of a partition.
-- Returns how many partitions were made. A partition is named after its Monday
-- (user_activity_events_pYYYYMMDD).
--
-- Locks: the parent SHARE UPDATE EXCLUSIVE (inserts and reads go on); the default
-- partition, briefly, while it is checked for rows of the new week.
CREATE OR REPLACE FUNCTION waymark.ensure_event_partitions(first_day date, last_day date)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
    monday date;
    lo timestamptz;
    hi timestamptz;
    name text;
    made integer := 0;
BEGIN
    FOR monday IN SELECT d::date FROM pg_catalog.generate_series(
                      pg_catalog.date_trunc('week', first_day::timestamp),
                      last_day::timestamp, interval '1 week') AS d LOOP
        lo := monday::timestamp AT TIME ZONE 'UTC';
        hi := (monday + 7)::timestamp AT TIME ZONE 'UTC';
        CONTINUE WHEN EXISTS (SELECT 1 FROM waymark.event_partitions p
                              WHERE p.from_at < hi AND p.to_at > lo);
        name := 'user_activity_events_p' || pg_catalog.to_char(monday, 'YYYYMMDD');
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
