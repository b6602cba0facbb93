-- waymark.prepare_event_partition: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.
--
-- What every partition of public.user_activity_events carries (docs/scaling.md,
-- "Partitions"): row-level security enabled and forced with no policy and no grant (a
-- partition is read through the parent, whose policies apply), and these indexes. The parent has none: a partition is indexed when it is made, and the
-- legacy table of an install migrated in place keeps its own until it ages out.
--   event_id      unique: the idempotency key. A retry carries its occurred_at, so it
--                 lands in the same partition and meets its first copy here.
--   event_type    single column: each type's entries deduplicate into posting lists
--                 (~7 bytes/event instead of ~73 for (event_type, occurred_at)); time
--                 ranges come from the partition bounds and the BRIN. Partial: not the
--                 navigation events every page writes (page_view, page_exit; over half
--                 of all rows), for which a type lookup is never worth an index (a
--                 quarter or more of a week's rows: the BRIN and the bounds serve them).
--   user_id       single column, partial: the same, for a person's events.
--   event_data    GIN jsonb_path_ops: containment (quest_id, badge_id, ...); without the
--                 pending list (fastupdate off), whose pages (up to 4 MB) each partition
--                 would otherwise keep after its flush: 39 instead of ~8 bytes/event
--                 with a month of small partitions (bench/README.md, bytes per event).
--   acquisition   partial covering index of /collect landing visits and conversions.
--   occurred_at, received_at  BRIN (autosummarized): time ranges within a week; the
--                 received_at one is what forget reads for recent visitor hashes.
CREATE OR REPLACE FUNCTION waymark.prepare_event_partition(part regclass)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
    name text := (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = part);
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', part);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', part);
    EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS %I ON %s (event_id)', name || '_event_id', part);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (event_type) '
                   'WHERE event_type NOT IN (''page_view'', ''page_exit'')', name || '_type', part);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (user_id) WHERE user_id IS NOT NULL',
                   name || '_user', part);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s USING gin (event_data jsonb_path_ops) '
                   'WITH (fastupdate = off)', name || '_data_gin', part);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (event_type, occurred_at) '
                   'INCLUDE (network_hash, utm_source, utm_medium, utm_campaign, event_id, user_id) '
                   'WHERE event_type IN (''landing_visit'', ''conversion'')',
                   name || '_acquisition', part);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s USING brin (occurred_at) '
                   'WITH (autosummarize = on)', name || '_occurred_brin', part);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s USING brin (received_at) '
                   'WITH (autosummarize = on)', name || '_received_brin', part);
END
$function$;

REVOKE ALL ON FUNCTION waymark.prepare_event_partition(regclass) FROM PUBLIC, anon, authenticated;
