-- The demo generator's statements (backend/scripts/demo_data.py), by name.

-- summarize_brin --
SELECT brin_summarize_new_values(c.oid)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am a ON a.oid = c.relam
WHERE i.indrelid IN (SELECT inhrelid FROM pg_inherits
                     WHERE inhparent = 'public.user_activity_events'::regclass)
  AND a.amname = 'brin';

-- create_staging --
CREATE TEMP TABLE demo_events (LIKE public.user_activity_events INCLUDING DEFAULTS);

-- insert_group --
INSERT INTO public.error_groups (fingerprint, error_type, message, component_name,
                                 api_endpoint, first_seen, last_seen)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (fingerprint) DO UPDATE SET last_seen = EXCLUDED.last_seen
RETURNING group_id;

-- refresh_groups --
UPDATE public.error_groups g
   SET occurrences = s.n, users_affected = s.users, first_seen = s.first_seen,
       last_seen = s.last_seen
  FROM (SELECT group_id, count(*) AS n, count(DISTINCT user_id) AS users,
               min(occurred_at) AS first_seen, max(occurred_at) AS last_seen
          FROM public.error_events GROUP BY group_id) s
 WHERE g.group_id = s.group_id;

-- drop_staging --
DROP TABLE IF EXISTS pg_temp.demo_events;

-- insert_link --
INSERT INTO public.guardian_links (parent_id, student_id) VALUES (%s, %s)
ON CONFLICT DO NOTHING;

-- insert_class --
INSERT INTO public.classes (class_id, name) VALUES (%s, %s)
ON CONFLICT DO NOTHING;

-- insert_membership --
INSERT INTO public.class_memberships (class_id, user_id, member_role) VALUES (%s, %s, %s)
ON CONFLICT DO NOTHING;

-- make_partitions --
-- The demo's days get their own partitions of the events, as the nightly job would have
-- made them while the events arrived (rather than all waiting in the default partition).
SELECT waymark.ensure_event_partitions(%(first)s::date, %(last)s::date);
