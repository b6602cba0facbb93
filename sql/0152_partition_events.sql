-- Partitioning user_activity_events, step 3 of 3: the table becomes a partitioned table
-- (by occurred_at, one partition per ISO week, Monday to Monday UTC), in one short transaction.
--
-- * The old table is renamed user_activity_events_legacy and attached as the partition of
--   everything before the cut-over (its validated CHECK spares the scan); its rows, indexes
--   and policies stay as they are, and it is emptied by `waymark purge` as its rows age
--   out. On a new install (or one without events) it is simply dropped.
-- * The parent lists the columns with the 8-byte times first, then the fixed-size ids and
--   codes, then the variable-length values: no alignment padding inside a row.
-- * The parent has no index: each partition is indexed when made
--   (waymark.prepare_event_partition). The default partition takes any event whose week has
--   no partition yet; `waymark.ensure_event_partitions` moves them when it makes the week.
-- * Grants and policies move to the parent (a query through the parent is checked against
--   the parent's policies only); the partitions keep no grants, so they are reachable only
--   through the parent.
-- Writers wait for this lock a moment; statements planned against the old table are
-- re-planned on their next use.

DO $$
DECLARE
    cutover timestamptz;
    pol record;
    acl record;
BEGIN
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = 'public.user_activity_events'::regclass) <> 'r' THEN
        RETURN;
    END IF;
    SELECT p.to_at INTO cutover FROM waymark.event_partitions p
     WHERE p.partition = 'user_activity_events_legacy';

    LOCK TABLE public.user_activity_events IN ACCESS EXCLUSIVE MODE;
    -- the faster event_type check (0150, validated by 0151) takes the old one's name
    ALTER TABLE public.user_activity_events DROP CONSTRAINT user_activity_events_event_type_check;
    ALTER TABLE public.user_activity_events RENAME CONSTRAINT user_activity_events_event_type_shape
        TO user_activity_events_event_type_check;
    ALTER TABLE public.user_activity_events RENAME TO user_activity_events_legacy;

    CREATE TABLE public.user_activity_events (
        occurred_at    timestamptz NOT NULL,
        received_at    timestamptz NOT NULL DEFAULT now(),
        anonymized_at  timestamptz,
        event_id       uuid NOT NULL DEFAULT gen_random_uuid(),
        user_id        uuid,
        session_id     uuid,
        duration_ms    integer CONSTRAINT user_activity_events_duration_ms_check CHECK (duration_ms >= 0),
        load_time_ms   integer CONSTRAINT user_activity_events_load_time_ms_check CHECK (load_time_ms >= 0),
        event_category public.event_category NOT NULL DEFAULT 'custom',
        source         public.event_source NOT NULL DEFAULT 'client',
        device_type    public.device_family,
        status_code    smallint CONSTRAINT user_activity_events_status_code_check CHECK (status_code BETWEEN 100 AND 599),
        event_type     text NOT NULL CONSTRAINT user_activity_events_event_type_check CHECK (event_type ~ '^[a-z][a-z0-9_]*$' AND octet_length(event_type) <= 64),
        visitor_hash   bytea,
        network_hash   bytea,
        browser        text CONSTRAINT user_activity_events_browser_check CHECK (char_length(browser) <= 64),
        os             text CONSTRAINT user_activity_events_os_check CHECK (char_length(os) <= 64),
        page_path      text CONSTRAINT user_activity_events_page_path_check CHECK (char_length(page_path) <= 2000),
        page_title     text CONSTRAINT user_activity_events_page_title_check CHECK (char_length(page_title) <= 2000),
        referrer       text CONSTRAINT user_activity_events_referrer_check CHECK (char_length(referrer) <= 2000),
        utm_source     text CONSTRAINT user_activity_events_utm_source_check CHECK (char_length(utm_source) <= 200),
        utm_medium     text CONSTRAINT user_activity_events_utm_medium_check CHECK (char_length(utm_medium) <= 200),
        utm_campaign   text CONSTRAINT user_activity_events_utm_campaign_check CHECK (char_length(utm_campaign) <= 200),
        event_data     jsonb NOT NULL DEFAULT '{}'::jsonb CONSTRAINT user_activity_events_event_data_check CHECK (jsonb_typeof(event_data) = 'object')
    ) PARTITION BY RANGE (occurred_at);
    COMMENT ON TABLE public.user_activity_events IS
        'Every tracked event, one partition per ISO week (UTC) of occurred_at; event_id is the '
        'idempotency key (unique in each partition; a retry carries its occurred_at). '
        'No raw IP or user agent is stored.';

    -- (the CHECK constraints carry the old table's names: ATTACH matches them by name)

    -- who could read the old table reads the parent; nobody but its owner the partition
    FOR acl IN SELECT a.grantee, a.privilege_type
                 FROM pg_class c, aclexplode(c.relacl) a
                WHERE c.oid = 'public.user_activity_events_legacy'::regclass
                  AND a.grantee <> c.relowner LOOP
        EXECUTE format('GRANT %s ON public.user_activity_events TO %s', acl.privilege_type,
                       CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE acl.grantee::regrole::text END);
        EXECUTE format('REVOKE %s ON public.user_activity_events_legacy FROM %s', acl.privilege_type,
                       CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE acl.grantee::regrole::text END);
    END LOOP;
    ALTER TABLE public.user_activity_events ENABLE ROW LEVEL SECURITY;
    ALTER TABLE public.user_activity_events FORCE ROW LEVEL SECURITY;
    FOR pol IN SELECT p.polname, p.polpermissive,
                      CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                    WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS cmd,
                      (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE r::regrole::text END, ', ')
                         FROM unnest(p.polroles) AS r) AS roles,
                      pg_get_expr(p.polqual, p.polrelid) AS qual,
                      pg_get_expr(p.polwithcheck, p.polrelid) AS withcheck
                 FROM pg_policy p
                WHERE p.polrelid = 'public.user_activity_events_legacy'::regclass LOOP
        EXECUTE format('CREATE POLICY %I ON public.user_activity_events AS %s FOR %s TO %s%s%s',
                       pol.polname, CASE WHEN pol.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                       pol.cmd, pol.roles,
                       CASE WHEN pol.qual IS NULL THEN '' ELSE ' USING (' || pol.qual || ')' END,
                       CASE WHEN pol.withcheck IS NULL THEN '' ELSE ' WITH CHECK (' || pol.withcheck || ')' END);
    END LOOP;

    IF EXISTS (SELECT 1 FROM public.user_activity_events_legacy) THEN
        EXECUTE format('ALTER TABLE public.user_activity_events ATTACH PARTITION '
                       'public.user_activity_events_legacy FOR VALUES FROM (MINVALUE) TO (%L)',
                       cutover);
    ELSE
        DROP TABLE public.user_activity_events_legacy;
        DELETE FROM waymark.event_partitions WHERE partition = 'user_activity_events_legacy';
    END IF;

    -- The default partition, secured and indexed like every week's partition (their current definition is
    -- waymark.prepare_event_partition, applied after the ordered migrations).
    CREATE TABLE public.user_activity_events_default PARTITION OF public.user_activity_events DEFAULT;
    ALTER TABLE public.user_activity_events_default ENABLE ROW LEVEL SECURITY;
    ALTER TABLE public.user_activity_events_default FORCE ROW LEVEL SECURITY;
    CREATE UNIQUE INDEX user_activity_events_default_event_id
        ON public.user_activity_events_default (event_id);
    CREATE INDEX user_activity_events_default_type ON public.user_activity_events_default (event_type);
    CREATE INDEX user_activity_events_default_user ON public.user_activity_events_default (user_id)
        WHERE user_id IS NOT NULL;
    CREATE INDEX user_activity_events_default_data_gin
        ON public.user_activity_events_default USING gin (event_data jsonb_path_ops);
    CREATE INDEX user_activity_events_default_acquisition
        ON public.user_activity_events_default (event_type, occurred_at)
        INCLUDE (network_hash, utm_source, utm_medium, utm_campaign, event_id, user_id)
        WHERE event_type IN ('landing_visit', 'conversion');
    CREATE INDEX user_activity_events_default_occurred_brin
        ON public.user_activity_events_default USING brin (occurred_at) WITH (autosummarize = on);
    CREATE INDEX user_activity_events_default_received_brin
        ON public.user_activity_events_default USING brin (received_at) WITH (autosummarize = on);
END
$$;
