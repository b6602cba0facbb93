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
-- or before the action to the last within 14 days after. Observational only. Active means
-- an activity event (%(passive)s types, the app's records for a student such as a quest
-- assigned, are none: the analytics' is_activity).
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
              AND e.occurred_at <= c.at + interval '14 days'
              AND e.event_type <> ALL (%(passive)s::text[])) AS next_active_at,
           (SELECT b.risk_score FROM public.learning_journey_events b
            WHERE b.user_id = c.student_id AND b.milestone = 'risk_assessment'
              AND b.occurred_at <= c.at ORDER BY b.occurred_at DESC LIMIT 1) AS risk_before,
           (SELECT a.risk_score FROM public.learning_journey_events a
            WHERE a.user_id = c.student_id AND a.milestone = 'risk_assessment'
              AND a.occurred_at > c.at AND a.occurred_at <= c.at + interval '14 days'
            ORDER BY a.occurred_at DESC LIMIT 1) AS risk_after,
           (SELECT min(e.occurred_at) FROM public.user_activity_events e
            WHERE e.user_id = c.student_id AND e.occurred_at > c.at
              AND e.occurred_at <= c.at + interval '14 days'
              AND e.event_type <> ALL (%(passive)s::text[])) AS first_active_at
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

-- ======================================================================================
-- Crossings (crossings.py); service connection
-- ======================================================================================

-- insert_crossings --
-- Each student's newest stored assessment in (%(since)s, %(now)s] against the one before
-- it: at or above %(threshold)s after below (or none) is "entered", below after at or above
-- is "left". One row per student, direction and assessment day: a re-run, or a second run
-- at the same time, inserts nothing (ON CONFLICT DO NOTHING), so each crossing is planned
-- once. first_flagged_at is when the current run of flagged assessments began (lead time).
WITH latest AS (
    SELECT DISTINCT ON (l.user_id) l.user_id, l.occurred_at, l.risk_score,
           coalesce(l.details -> 'factors', '[]'::jsonb) AS factors
    FROM public.learning_journey_events l
    WHERE l.milestone = 'risk_assessment' AND l.user_id IS NOT NULL
      AND l.occurred_at > %(since)s AND l.occurred_at <= %(now)s
    ORDER BY l.user_id, l.occurred_at DESC
), judged AS (
    SELECT t.*, p.risk_score AS previous_score,
           (SELECT min(f.occurred_at) FROM public.learning_journey_events f
            WHERE f.user_id = t.user_id AND f.milestone = 'risk_assessment'
              AND f.occurred_at <= t.occurred_at
              AND f.occurred_at > coalesce(
                  (SELECT max(u.occurred_at) FROM public.learning_journey_events u
                   WHERE u.user_id = t.user_id AND u.milestone = 'risk_assessment'
                     AND u.occurred_at < t.occurred_at AND u.risk_score < %(threshold)s),
                  '-infinity')) AS first_flagged_at
    FROM latest t
    LEFT JOIN LATERAL (
        SELECT b.risk_score FROM public.learning_journey_events b
        WHERE b.user_id = t.user_id AND b.milestone = 'risk_assessment'
          AND b.occurred_at < t.occurred_at
        ORDER BY b.occurred_at DESC LIMIT 1) p ON true
)
INSERT INTO public.alert_crossings (student_id, direction, assessed_on, risk_score,
                                    previous_score, threshold, factors, first_flagged_at,
                                    detected_at)
SELECT j.user_id,
       CASE WHEN j.risk_score >= %(threshold)s THEN 'entered' ELSE 'left' END,
       (j.occurred_at AT TIME ZONE 'UTC')::date, j.risk_score, j.previous_score,
       %(threshold)s, j.factors,
       CASE WHEN j.risk_score >= %(threshold)s THEN j.first_flagged_at END, %(now)s
FROM judged j
WHERE NOT waymark.is_forgotten(j.user_id)
  AND ((j.risk_score >= %(threshold)s AND coalesce(j.previous_score, 0) < %(threshold)s)
       OR (j.risk_score < %(threshold)s AND j.previous_score >= %(threshold)s))
ON CONFLICT (student_id, direction, assessed_on) DO NOTHING
RETURNING crossing_id

-- recipients --
-- Who may see a student and so is told: the teachers of their classes, their linked
-- parents, and the configured admins. Reads student_ids (crossing_id, student_id).
recipients AS (
    SELECT c.crossing_id, t.user_id AS recipient_id, 'teacher' AS recipient_role
    FROM student_ids c
    JOIN public.class_memberships s ON s.user_id = c.student_id AND s.member_role = 'student'
    JOIN public.class_memberships t ON t.class_id = s.class_id AND t.member_role = 'teacher'
    UNION
    SELECT c.crossing_id, g.parent_id, 'parent'
    FROM student_ids c JOIN public.guardian_links g ON g.student_id = c.student_id
    UNION
    SELECT c.crossing_id, a.admin_id, 'admin'
    FROM student_ids c CROSS JOIN unnest(%(admins)s::uuid[]) AS a(admin_id)
)

-- plan_deliveries --
-- One e-mail per recipient (when e-mail is on) and one webhook per crossing (when the
-- webhook is on), for the crossings just inserted. A person who is both (say, teacher
-- and admin) gets one e-mail: the unique key keeps the first.
WITH student_ids AS (
    SELECT crossing_id, student_id FROM public.alert_crossings
    WHERE crossing_id = ANY (%(crossing_ids)s::uuid[])
), {{recipients}}, planned AS (
    SELECT crossing_id, 'email' AS channel, recipient_id, recipient_role
    FROM recipients WHERE %(email)s
    UNION ALL
    SELECT crossing_id, 'webhook', NULL, NULL FROM student_ids WHERE %(webhook)s
)
INSERT INTO public.alert_deliveries (crossing_id, channel, recipient_id, recipient_role)
SELECT crossing_id, channel, recipient_id, recipient_role FROM planned
ORDER BY crossing_id, channel, recipient_role DESC, recipient_id
ON CONFLICT DO NOTHING

-- recipients_of_crossing --
-- The people a crossing concerns, for the webhook body (ids and relation only).
WITH student_ids AS (
    SELECT crossing_id, student_id FROM public.alert_crossings
    WHERE crossing_id = %(crossing_id)s
), {{recipients}}
SELECT recipient_id, recipient_role FROM recipients ORDER BY recipient_role, recipient_id

-- ======================================================================================
-- Deliveries (deliveries.py); service connection
-- ======================================================================================

-- claim_due --
-- Take up to %(limit)s due deliveries for this run: pending ones whose time has come, and
-- ones a crashed run left "sending" for longer than %(stale)s. FOR UPDATE SKIP LOCKED and
-- the status change committed before sending: a concurrent run never takes the same row.
-- A delivery whose student was forgotten meanwhile is gone (its crossing was deleted).
UPDATE public.alert_deliveries d
SET status = 'sending', claimed_at = %(now)s, attempts = d.attempts + 1
FROM public.alert_crossings c
WHERE c.crossing_id = d.crossing_id
  AND d.delivery_id IN (
      SELECT q.delivery_id FROM public.alert_deliveries q
      WHERE (q.status = 'pending' AND q.next_attempt_at <= %(now)s)
         OR (q.status = 'sending' AND q.claimed_at < %(stale)s)
      ORDER BY q.next_attempt_at, q.delivery_id
      LIMIT %(limit)s
      FOR UPDATE SKIP LOCKED)
  AND NOT waymark.is_forgotten(c.student_id)
RETURNING d.delivery_id, d.crossing_id, d.channel, d.recipient_id, d.recipient_role,
          d.attempts, c.student_id, c.direction, c.assessed_on, c.risk_score,
          c.previous_score, c.threshold, c.factors, c.first_flagged_at

-- mark_delivered --
UPDATE public.alert_deliveries
SET status = 'delivered', delivered_at = %(now)s, last_error = NULL
WHERE delivery_id = %(delivery_id)s

-- mark_retry --
-- A transient failure: try again at %(next_attempt_at)s (the run may wait for it).
UPDATE public.alert_deliveries
SET status = 'pending', next_attempt_at = %(next_attempt_at)s, last_error = %(error)s
WHERE delivery_id = %(delivery_id)s

-- mark_final --
-- Given up (failed) or nothing to send (skipped), with the reason.
UPDATE public.alert_deliveries
SET status = %(status)s, last_error = %(error)s
WHERE delivery_id = %(delivery_id)s

-- next_due --
-- When the earliest pending delivery falls due (the run waits for it if soon enough).
SELECT min(next_attempt_at) AS next_at FROM public.alert_deliveries WHERE status = 'pending'

-- delivery_counts --
SELECT status, count(*) AS n FROM public.alert_deliveries GROUP BY status

-- ======================================================================================
-- Weekly digest (digest.py)
-- ======================================================================================

-- digest_recipients --
-- Service connection: every teacher of a class and every linked parent.
SELECT DISTINCT user_id AS recipient_id, 'teacher' AS recipient_role
FROM public.class_memberships WHERE member_role = 'teacher'
UNION
SELECT DISTINCT parent_id, 'parent' FROM public.guardian_links
ORDER BY 2, 1

-- claim_digest --
-- Service connection: this run owns the recipient's digest for the week when the row is
-- new, or when an earlier attempt failed (and attempts remain); otherwise no row.
INSERT INTO public.digest_deliveries AS d (recipient_id, recipient_role, week_start)
VALUES (%(recipient_id)s, %(recipient_role)s, %(week_start)s)
ON CONFLICT (recipient_id, week_start) DO UPDATE
   SET status = 'sending', attempts = d.attempts + 1
   WHERE d.status = 'failed' AND d.attempts < %(max_attempts)s
RETURNING delivery_id

-- finish_digest --
UPDATE public.digest_deliveries
SET status = %(status)s, last_error = %(error)s, students = %(students)s,
    delivered_at = CASE WHEN %(status)s = 'delivered' THEN %(now)s END
WHERE delivery_id = %(delivery_id)s

-- digest_students --
-- Run AS THE RECIPIENT (RLS applies to every table read): the students they may see, with
-- their risk now and a week ago, activity this week and actions recorded this week.
WITH s AS (SELECT DISTINCT unnest(waymark.visible_students()) AS student_id)
SELECT s.student_id,
       (SELECT l.risk_score FROM public.learning_journey_events l
        WHERE l.user_id = s.student_id AND l.milestone = 'risk_assessment'
          AND l.occurred_at <= %(now)s ORDER BY l.occurred_at DESC LIMIT 1) AS risk_now,
       (SELECT l.risk_score FROM public.learning_journey_events l
        WHERE l.user_id = s.student_id AND l.milestone = 'risk_assessment'
          AND l.occurred_at <= %(week_ago)s ORDER BY l.occurred_at DESC LIMIT 1) AS risk_before,
       (SELECT count(DISTINCT (e.occurred_at AT TIME ZONE 'UTC')::date)
        FROM public.user_activity_events e
        WHERE e.user_id = s.student_id AND e.occurred_at > %(week_ago)s
          AND e.occurred_at <= %(now)s) AS active_days,
       (SELECT count(*) FROM public.interventions i
        WHERE i.student_id = s.student_id AND i.created_at > %(week_ago)s
          AND i.created_at <= %(now)s) AS actions
FROM s
WHERE s.student_id IS NOT NULL
ORDER BY risk_now DESC NULLS LAST, s.student_id

-- digest_classes --
-- Run AS THE RECIPIENT: each class they teach, its students' count, how many are flagged
-- and their mean risk now (small classes are suppressed by the caller).
WITH taught AS (SELECT unnest(waymark.taught_classes()) AS class_id),
members AS (
    SELECT t.class_id, m.user_id,
           (SELECT l.risk_score FROM public.learning_journey_events l
            WHERE l.user_id = m.user_id AND l.milestone = 'risk_assessment'
              AND l.occurred_at <= %(now)s ORDER BY l.occurred_at DESC LIMIT 1) AS risk
    FROM taught t JOIN public.class_memberships m
      ON m.class_id = t.class_id AND m.member_role = 'student'
)
SELECT k.class_id, k.name, count(m.user_id) AS students,
       count(*) FILTER (WHERE m.risk >= %(threshold)s) AS flagged,
       avg(m.risk) AS mean_risk
FROM taught t JOIN public.classes k ON k.class_id = t.class_id
LEFT JOIN members m ON m.class_id = t.class_id
GROUP BY k.class_id, k.name
ORDER BY k.name, k.class_id
