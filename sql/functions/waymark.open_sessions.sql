-- waymark.open_sessions: its one current definition. `waymark migrate` re-applies this file whenever
-- its content changes (after the ordered migrations); see backend/migrations.py.
--
-- Each person's session still open at the start of their first segment in a batch
-- (backend/services/ingest/session_segments.py): the latest session of the person (one index
-- probe: sessions of a person never overlap), kept when it is open within `gap`
-- (backend.taxonomy.SESSION_GAP). The people come as one JSON document, encoded in C by the
-- writer. PL/pgSQL and not a plain statement because PL/pgSQL keeps the query's plan for the
-- life of the connection: parsing and planning it cost PostgreSQL more than running it, once
-- per durable commit (docs/ingestion.md, "What a commit costs"), and server-side prepared
-- statements, which would keep it too, are refused by a transaction pooler (Supabase's).

CREATE OR REPLACE FUNCTION waymark.open_sessions(keys json, gap interval)
 RETURNS TABLE(idx integer, session_id uuid, started_at timestamp with time zone)
 LANGUAGE plpgsql
 STABLE
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT k.idx, m.session_id, m.started_at
    FROM (SELECT j.idx, j.user_id, decode(j.visitor_hash, 'hex') AS visitor_hash,
                 j.started_at, j.last_seen_at
          FROM json_to_recordset(keys) AS j(idx int, user_id uuid, visitor_hash text,
                                            started_at timestamptz,
                                            last_seen_at timestamptz)) AS k
    CROSS JOIN LATERAL (
        (SELECT us.session_id, us.last_seen_at, us.started_at FROM public.user_sessions us
         WHERE k.user_id IS NOT NULL AND us.user_id = k.user_id
           AND us.started_at <= k.last_seen_at + gap
         ORDER BY us.started_at DESC LIMIT 1)
        UNION ALL
        (SELECT us.session_id, us.last_seen_at, us.started_at FROM public.user_sessions us
         WHERE k.user_id IS NULL AND us.visitor_hash = k.visitor_hash AND us.user_id IS NULL
         ORDER BY us.last_seen_at DESC LIMIT 1)
    ) AS m
    WHERE m.last_seen_at >= k.started_at - gap AND m.started_at <= k.last_seen_at + gap;
END
$function$;

REVOKE ALL ON FUNCTION waymark.open_sessions(json, interval) FROM PUBLIC, anon;
