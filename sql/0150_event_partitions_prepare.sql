-- Partitioning user_activity_events by week (issue 18), step 1 of 3: an existing install
-- migrates in place while ingestion runs (docs/scaling.md, "Partitions").
--
-- The table as it is becomes the "legacy" partition, holding every event before a
-- cut-over Monday; each ISO week from then on gets its own partition. Attaching a table as a
-- partition needs proof that all its rows fit the range: a CHECK constraint, added here
-- NOT VALID (no scan: a moment's lock), validated in 0151 (a scan that blocks no insert),
-- and trusted by the ATTACH in 0152 (no scan under its lock).
--
-- The cut-over is the first Monday (00:00 UTC) from the day after tomorrow on: ingestion
-- accepts occurred_at up to 5 minutes ahead, so no insert between this step and 0152 can
-- break the constraint, and the weeks after it are whole. A row stored with a later time
-- (by hand) moves the cut-over past it.

CREATE TABLE IF NOT EXISTS waymark.event_partitions (
    partition     text PRIMARY KEY,          -- a table in public, partition of the events
    from_at       timestamptz NOT NULL,      -- '-infinity' for the legacy table
    to_at         timestamptz NOT NULL,
    anonymized_at timestamptz,               -- rewritten whole by `waymark anonymize`
    collect_purged_at timestamptz,           -- its /collect and /measure rows purged
    CHECK (from_at < to_at)
);
COMMENT ON TABLE waymark.event_partitions IS
    'The partitions of public.user_activity_events Waymark made, with their ranges; '
    'the default partition is not listed (it has no range).';

-- Bumped by every change of stored event rows other than inserts and anonymization
-- (forget's deletes and redactions): a partition rewritten from a snapshot is swapped in
-- only if nothing changed its rows since that snapshot.
CREATE TABLE IF NOT EXISTS waymark.event_edits (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    epoch    bigint NOT NULL DEFAULT 0
);
INSERT INTO waymark.event_edits DEFAULT VALUES ON CONFLICT DO NOTHING;

DO $$
DECLARE
    cutover timestamptz;
BEGIN
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = 'public.user_activity_events'::regclass) <> 'r' THEN
        RETURN;  -- already partitioned
    END IF;
    SELECT date_trunc('week', greatest(date_trunc('day', now() AT TIME ZONE 'UTC') + interval '2 days',
                                       date_trunc('day', max(occurred_at) AT TIME ZONE 'UTC') + interval '1 day')
                              + interval '6 days')
               AT TIME ZONE 'UTC'
      INTO cutover
      FROM public.user_activity_events;
    INSERT INTO waymark.event_partitions (partition, from_at, to_at)
    VALUES ('user_activity_events_legacy', '-infinity', cutover)
    ON CONFLICT (partition) DO UPDATE SET to_at = EXCLUDED.to_at;
    EXECUTE format('ALTER TABLE public.user_activity_events '
                   'ADD CONSTRAINT user_activity_events_legacy_range '
                   'CHECK (occurred_at < %L) NOT VALID', cutover);
    -- The same rule for event_type as before, written so that PostgreSQL checks it ~10x
    -- faster: a bounded repetition ({0,63}) makes the regex engine build a large
    -- automaton, and the check ran for every inserted row (75 % of a partition
    -- rewrite's time, bench/README.md "Week partitions"). Validated in 0151; 0152 puts
    -- it in the old check's place.
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'public.user_activity_events'::regclass
                     AND conname = 'user_activity_events_event_type_shape') THEN
        ALTER TABLE public.user_activity_events ADD CONSTRAINT user_activity_events_event_type_shape
            CHECK (event_type ~ '^[a-z][a-z0-9_]*$' AND octet_length(event_type) <= 64) NOT VALID;
    END IF;
END
$$;
