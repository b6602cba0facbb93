-- The alerts package's statements, by name (loaded once by backend/services/alerts/__init__.py).
-- Values are always bound parameters.

-- ======================================================================================
-- Interventions (interventions.py); run as the caller, so RLS decides
-- ======================================================================================

-- insert_intervention --
-- The caller records an action; the INSERT policy checks they may (sql/0100).
INSERT INTO public.interventions (student_id, actor_id, actor_role, action, note, created_at)
VALUES (%(student_id)s, auth.uid(), waymark.app_role(), %(action)s, %(note)s, %(now)s)
RETURNING intervention_id, student_id, actor_id, actor_role, action, note, created_at

-- interventions_of_student --
-- One student's interventions the caller may read, newest first.
SELECT intervention_id, student_id, actor_id, actor_role, action, note, created_at
FROM public.interventions
WHERE student_id = %(student_id)s
ORDER BY created_at DESC, intervention_id
LIMIT %(limit)s

-- outcomes --
-- "Did it help?": per action type (first action of that type per student in the window)
-- and for flagged students with no action in the window (from their first flagged
-- assessment): how many, how many could be observed for 7/14 days, how many were active
-- again within 7/14 days, and the mean change of their stored risk from the last score at
-- or before the action to the last within 14 days after. Observational only.
WITH acted AS (
    SELECT DISTINCT ON (i.student_id, i.action) i.student_id, i.action, i.created_at AS at
    FROM public.interventions i
    WHERE i.student_id IS NOT NULL AND i.created_at >= %(since)s AND i.created_at <= %(now)s
    ORDER BY i.student_id, i.action, i.created_at
), unacted AS (
    SELECT DISTINCT ON (l.user_id) l.user_id AS student_id, 'no_action'::text AS action,
           l.occurred_at AS at
    FROM public.learning_journey_events l
    WHERE l.milestone = 'risk_assessment' AND l.risk_score >= %(threshold)s
      AND l.occurred_at >= %(since)s AND l.occurred_at <= %(now)s
      AND NOT EXISTS (SELECT 1 FROM public.interventions i
                      WHERE i.student_id = l.user_id AND i.created_at >= %(since)s
                        AND i.created_at <= %(now)s)
    ORDER BY l.user_id, l.occurred_at
), cases AS (
    SELECT * FROM acted UNION ALL SELECT * FROM unacted
), measured AS (
    SELECT c.action, c.at,
           (SELECT max(e.occurred_at) FROM public.user_activity_events e
            WHERE e.user_id = c.student_id AND e.occurred_at > c.at
              AND e.occurred_at <= c.at + interval '14 days') AS next_active_at,
           (SELECT b.risk_score FROM public.learning_journey_events b
            WHERE b.user_id = c.student_id AND b.milestone = 'risk_assessment'
              AND b.occurred_at <= c.at ORDER BY b.occurred_at DESC LIMIT 1) AS risk_before,
           (SELECT a.risk_score FROM public.learning_journey_events a
            WHERE a.user_id = c.student_id AND a.milestone = 'risk_assessment'
              AND a.occurred_at > c.at AND a.occurred_at <= c.at + interval '14 days'
            ORDER BY a.occurred_at DESC LIMIT 1) AS risk_after,
           (SELECT min(e.occurred_at) FROM public.user_activity_events e
            WHERE e.user_id = c.student_id AND e.occurred_at > c.at
              AND e.occurred_at <= c.at + interval '14 days') AS first_active_at
    FROM cases c
)
SELECT action, count(*) AS students,
       count(*) FILTER (WHERE at + interval '7 days' <= %(now)s) AS observed_7d,
       count(*) FILTER (WHERE at + interval '7 days' <= %(now)s
                          AND first_active_at <= at + interval '7 days') AS active_7d,
       count(*) FILTER (WHERE at + interval '14 days' <= %(now)s) AS observed_14d,
       count(*) FILTER (WHERE at + interval '14 days' <= %(now)s
                          AND first_active_at IS NOT NULL) AS active_14d,
       avg(risk_after - risk_before) AS mean_risk_change,
       count(risk_after - risk_before) AS risk_pairs
FROM measured
GROUP BY action
ORDER BY action
