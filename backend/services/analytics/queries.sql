-- The analytics package's SQL, by name (backend/queries.py loads it once, in the package's
-- __init__). What the numbers mean is in docs/analytics.md and docs/risk.md. Values are
-- always bound parameters (%(name)s); {{name}} includes another statement of this file when
-- it loads, which is how a session, a streak and a student are each defined once below and
-- used by every query that needs them.
--
-- The shared definitions are CTE fragments: each one says which CTE it reads (a caller
-- defines that first) and which it yields.
--
-- A read of one person's events "over their history" looks back to %(history_since)s and
-- no further (docs/analytics.md, "How far back"): older events are anonymized and belong
-- to no one, and the bound lets PostgreSQL leave the events' older week partitions out
-- when it plans the query.


-- ======================================================================================
-- Core definitions
-- ======================================================================================

-- is_activity --
-- Whether an event shows its user active: every type but those the app records *for* a
-- student (%(passive)s, backend.taxonomy.NON_ACTIVITY_TYPES: work assigned to them). Every
-- count of activity below — last activity, active days, sessions, streaks, a class's
-- active students — reads its events through this, so an assignment sent to a student who
-- has gone quiet does not make them look active anywhere. Reads event_type; callers bind
-- %(passive)s and %(leaving)s with window.ACTIVITY_PARAMS.
event_type <> ALL (%(passive)s::text[])

-- is_leaving --
-- Whether an event says the student's course ended for them (%(leaving)s,
-- backend.taxonomy.LEAVING_TYPES: withdrawn or completed). Reads event_type.
event_type = ANY (%(leaving)s::text[])

-- session_start --
-- A session (docs/analytics.md, "Sessions") is a run of one user's events with no pause
-- longer than %(gap)s (backend.taxonomy.SESSION_GAP by default, the gap of the writer's
-- stored user_sessions too). This expression says whether an event starts one: the user's
-- first event (prev_at, their previous event's time, is NULL) or the first after a pause.
(prev_at IS NULL OR occurred_at - prev_at > %(gap)s)

-- session_seconds --
-- How long a session lasts: from its first event to the end of its last (occurred_at plus
-- duration_ms, e.g. a page exit's time on page). An aggregate over the session's events.
extract(epoch FROM max(occurred_at + coalesce(duration_ms, 0) * interval '1 ms')
                   - min(occurred_at))

-- sessions --
-- Every user's sessions, for the risk score's short_sessions factor: session_start and
-- session_seconds applied per user. Reads session_events (user_id, occurred_at,
-- duration_ms); yields sessions (user_id, seconds numeric), one row per session.
session_gaps AS (
    SELECT user_id, occurred_at, duration_ms,
           lag(occurred_at) OVER (PARTITION BY user_id ORDER BY occurred_at) AS prev_at
    FROM session_events
), session_numbers AS (
    SELECT user_id, occurred_at, duration_ms,
           count(*) FILTER (WHERE {{session_start}})
               OVER (PARTITION BY user_id ORDER BY occurred_at
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session_no
    FROM session_gaps
), sessions AS (
    SELECT user_id, {{session_seconds}} AS seconds
    FROM session_numbers GROUP BY user_id, session_no
)

-- user_sessions --
-- The sessions of one user (%(user_id)s) in (%(since)s, %(now)s], for engagement and
-- journey (whose since is %(history_since)s): the same session_start and session_seconds,
-- every activity event counting. Not the per-user sessions above filtered to one user: without a
-- partition the events are sorted by time alone, once (a (user_id, time) sort key costs
-- ~15 percent of these answers at 10k events a user). Yields sessions (seconds float8).
session_gaps AS (
    SELECT occurred_at, duration_ms, lag(occurred_at) OVER (ORDER BY occurred_at) AS prev_at
    FROM public.user_activity_events
    WHERE user_id = %(user_id)s AND occurred_at > %(since)s AND occurred_at <= %(now)s
      AND {{is_activity}}
), session_numbers AS (
    SELECT occurred_at, duration_ms,
           count(*) FILTER (WHERE {{session_start}})
               OVER (ORDER BY occurred_at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
               AS session_no
    FROM session_gaps
), sessions AS (
    SELECT {{session_seconds}}::float8 AS seconds
    FROM session_numbers GROUP BY session_no
)

-- streak_runs --
-- Streak islands (docs/analytics.md, "Streaks"): runs of consecutive active UTC days.
-- Reads streak_days (user_id, day), one row per user and active day; yields streak_runs
-- (user_id, first_day, last_day, length).
streak_runs AS (
    SELECT user_id, min(day) AS first_day, max(day) AS last_day, count(*) AS length
    FROM (SELECT user_id, day,
                 day - (row_number() OVER (PARTITION BY user_id ORDER BY day))::int AS island
          FROM streak_days) d
    GROUP BY user_id, island
)

-- streaks --
-- Per user: active days, the longest streak, and the current one, which is alive while its
-- last day is %(today)s or the day before (not yet active today does not break it).
-- Reads streak_days like streak_runs; yields streaks (user_id, active_days, longest_streak,
-- current_streak).
{{streak_runs}}, streaks AS (
    SELECT user_id, sum(length) AS active_days, max(length) AS longest_streak,
           coalesce(max(length) FILTER (WHERE last_day >= %(today)s::date - 1), 0)
               AS current_streak
    FROM streak_runs GROUP BY user_id
)

-- every_user_id --
-- Every user id the connection may see (RLS applies) with an event after
-- %(history_since)s, one index probe each: a skip scan over the user_id index of each
-- partition since then, far cheaper than reading every event. Yields ids (user_id),
-- ending with one NULL row; use it after WITH RECURSIVE.
ids AS (
    (SELECT e.user_id FROM public.user_activity_events e
     WHERE e.user_id IS NOT NULL AND e.occurred_at > %(history_since)s
     ORDER BY e.user_id LIMIT 1)
    UNION ALL
    SELECT (SELECT e.user_id FROM public.user_activity_events e
            WHERE e.user_id > ids.user_id AND e.occurred_at > %(history_since)s
            ORDER BY e.user_id LIMIT 1)
    FROM ids WHERE ids.user_id IS NOT NULL
)

-- spans_of_all --
-- Every user the connection may see (RLS applies) with an event in (%(history_since)s,
-- %(now)s]: their first event, their last activity (%(passive)s types left out) and when
-- they last left (a %(leaving)s event), in one pass over the history. For the jobs
-- (student_ids): one scan of the history costs less than a probe per student into each
-- of its week partitions. Not for answers: under RLS a teacher's connection would read
-- everyone's history to find a class's rows.
-- Yields student_candidates (user_id, first_at, last_at, left_at).
student_candidates AS (
    SELECT user_id, min(occurred_at) AS first_at,
           max(occurred_at) FILTER (WHERE {{is_activity}}) AS last_at,
           max(occurred_at) FILTER (WHERE {{is_leaving}}) AS left_at
    FROM public.user_activity_events
    WHERE user_id IS NOT NULL AND occurred_at > %(history_since)s AND occurred_at <= %(now)s
    GROUP BY user_id
)

-- spans_of_ids --
-- The same for the users of span_ids (user_id) only: one probe of each week partition
-- of the history per user. Yields student_candidates (user_id, first_at, last_at,
-- left_at); a user without an event there has NULL times.
student_candidates AS (
    SELECT i.user_id, s.first_at, s.last_at, s.left_at
    FROM span_ids i CROSS JOIN LATERAL (
        SELECT min(e.occurred_at) AS first_at,
               max(e.occurred_at) FILTER (WHERE {{is_activity}}) AS last_at,
               max(e.occurred_at) FILTER (WHERE {{is_leaving}}) AS left_at
        FROM public.user_activity_events e
        WHERE e.user_id = i.user_id
          AND e.occurred_at > %(history_since)s AND e.occurred_at <= %(now)s) s
)

-- students --
-- Who is a student (docs/risk.md, "Who is scored"): a user with at least one event in
-- (%(history_since)s, %(now)s] who is neither a parent in guardian_links nor a teacher of
-- a class. Reads student_candidates (user_id, first_at, last_at, left_at: spans_of_all or
-- spans_of_ids); yields students with the same columns.
students AS (
    SELECT c.user_id, c.first_at, c.last_at, c.left_at
    FROM student_candidates c
    WHERE c.first_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM public.guardian_links g WHERE g.parent_id = c.user_id)
      AND NOT EXISTS (SELECT 1 FROM public.class_memberships m
                      WHERE m.user_id = c.user_id AND m.member_role = 'teacher')
)


-- has_left --
-- Whether a student has left their course (docs/risk.md, "Who is scored"): their latest
-- withdrawal or completion (is_leaving) at left_at, and no activity (last_at) after it.
-- Reads left_at and last_at.
(left_at IS NOT NULL AND (last_at IS NULL OR last_at <= left_at))

-- on_course --
-- The students still on their course: those who have not left (has_left). The risk
-- score, the score job and the milestone job cover exactly these; a caller's roster lists
-- every student. Reads students; yields on_course (user_id, first_at, last_at).
on_course AS (
    SELECT user_id, first_at, last_at FROM students
    WHERE NOT {{has_left}}
)

-- ======================================================================================
-- Students, milestones (milestones.py)
-- ======================================================================================

-- student_ids --
-- Everyone the milestone and score jobs cover, in a stable order for batching.
WITH {{spans_of_all}}, {{students}}, {{on_course}}
SELECT user_id FROM on_course ORDER BY user_id

-- lock_forget_shared --
-- Every write of user rows takes the forget lock shared first (docs/privacy.md, "Forget").
SELECT waymark.lock_forget_shared()

-- event_milestones --
-- quest_completed and badge_earned milestones of %(user_ids)s, one per source event.
INSERT INTO public.learning_journey_events (user_id, occurred_at, milestone, details, dedupe_key)
SELECT s.user_id, s.occurred_at, s.event_type,
       jsonb_strip_nulls(jsonb_build_object(
           'event_id', s.event_id, 'quest_id', s.event_data -> 'quest_id',
           'quest_title', s.event_data -> 'quest_title', 'pillar', s.event_data -> 'pillar',
           'xp', s.event_data -> 'xp', 'badge_id', s.event_data -> 'badge_id')),
       s.event_type || ':' || s.event_id
FROM public.user_activity_events s
WHERE s.user_id = ANY (%(user_ids)s::uuid[])
  AND s.event_type IN ('quest_completed', 'badge_earned')
  AND s.occurred_at > %(history_since)s AND s.occurred_at <= %(now)s
  AND NOT waymark.is_forgotten(s.user_id)
ON CONFLICT (dedupe_key) DO NOTHING

-- streak_milestones --
-- streak_reached when a run of %(user_ids)s reaches one of %(thresholds)s days, dated
-- 00:00 UTC of the day it was reached. The forget test runs on the milestones reached
-- (MATERIALIZED keeps the planner from pushing it down to every event read).
WITH streak_days AS (
    SELECT DISTINCT user_id, (occurred_at AT TIME ZONE 'UTC')::date AS day
    FROM public.user_activity_events
    WHERE user_id = ANY (%(user_ids)s::uuid[])
      AND occurred_at > %(history_since)s AND occurred_at <= %(now)s
), {{streak_runs}}, reached AS MATERIALIZED (
    SELECT r.user_id, r.first_day, t.days
    FROM streak_runs r CROSS JOIN unnest(%(thresholds)s::int[]) AS t(days)
    WHERE r.length >= t.days
)
INSERT INTO public.learning_journey_events (user_id, occurred_at, milestone, details, dedupe_key)
SELECT s.user_id, ((s.first_day + s.days - 1)::timestamp AT TIME ZONE 'UTC'), 'streak_reached',
       jsonb_build_object('days', s.days, 'streak_started', s.first_day),
       'streak:' || s.user_id || ':' || s.first_day || ':' || s.days
FROM reached s
WHERE NOT waymark.is_forgotten(s.user_id)
ON CONFLICT (dedupe_key) DO NOTHING


-- ======================================================================================
-- Risk (risk/): the inputs of every factor, and the stored assessments
-- ======================================================================================

-- risk_inputs --
-- Raw per-student numbers for every student the connection may see, in one statement.
-- Parameters: now, since (= now - window), deadlines_since (= now - deadline_days),
-- recent_since (= now - trend_days), today (UTC date of now), gap (session gap interval),
-- passive (NON_ACTIVITY_TYPES), history_since, user_ids (NULL here). The students are
-- found by the skip scan (an index probe per visible user), as the roster does.
WITH RECURSIVE {{every_user_id}}, span_ids AS (
    SELECT user_id FROM ids WHERE user_id IS NOT NULL
), {{spans_of_ids}}, {{risk_inputs_body}}

-- risk_inputs_given --
-- risk_inputs for the students in %(user_ids)s only (same rows).
WITH span_ids AS (SELECT DISTINCT unnest(%(user_ids)s::uuid[]) AS user_id),
{{spans_of_ids}}, {{risk_inputs_body}}

-- risk_inputs_body --
-- The body of risk_inputs and risk_inputs_given: reads student_candidates.
{{students}}, {{on_course}}, win AS (
    SELECT e.user_id, e.occurred_at, e.event_type, e.duration_ms,
           e.event_data ->> 'quest_id' AS quest_id
    FROM public.user_activity_events e
    WHERE e.occurred_at > %(since)s AND e.occurred_at <= %(now)s
      AND e.user_id IS NOT NULL
      AND (%(user_ids)s::uuid[] IS NULL OR e.user_id = ANY (%(user_ids)s::uuid[]))
      AND {{is_activity}}
), session_events AS (
    SELECT user_id, occurred_at, duration_ms FROM win
), {{sessions}}, session_stats AS (
    SELECT user_id, count(*) AS sessions, avg(seconds) / 60.0 AS avg_session_minutes
    FROM sessions GROUP BY user_id
), streak_days AS (
    SELECT DISTINCT user_id, (occurred_at AT TIME ZONE 'UTC')::date AS day FROM win
), {{streaks}}, recent AS (
    SELECT user_id, count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date) AS recent_active_days
    FROM win WHERE occurred_at > %(recent_since)s GROUP BY user_id
), quests AS (
    SELECT user_id,
           count(DISTINCT quest_id) FILTER (
               WHERE event_type IN ('quest_started', 'quest_completed')) AS quests_started,
           count(DISTINCT quest_id) FILTER (WHERE event_type = 'quest_completed')
               AS quests_completed
    FROM win WHERE quest_id IS NOT NULL
    GROUP BY user_id
), logins AS (
    SELECT user_id, count(*) AS login_events
    FROM win WHERE event_type = 'login_success' GROUP BY user_id
), assigned AS MATERIALIZED (
    SELECT e.user_id, e.event_data ->> 'quest_id' AS quest_id,
           max(waymark.try_timestamptz(e.event_data ->> 'due_at')) AS due_at
    FROM public.user_activity_events e
    WHERE e.event_type = 'quest_assigned'
      AND e.occurred_at > %(history_since)s AND e.occurred_at <= %(now)s
      AND e.user_id IS NOT NULL
      AND (%(user_ids)s::uuid[] IS NULL OR e.user_id = ANY (%(user_ids)s::uuid[]))
      AND e.event_data ? 'quest_id' AND e.event_data ? 'due_at'
    GROUP BY 1, 2
), completions AS MATERIALIZED (
    -- First completion of each quest, and its best xp (a JSON number only, bounded so a
    -- huge number cannot overflow float8) among completions of the deadline window.
    SELECT e.user_id, e.event_data ->> 'quest_id' AS quest_id,
           min(e.occurred_at) AS done_at,
           max(CASE WHEN jsonb_typeof(e.event_data -> 'xp') = 'number'
                    THEN least(greatest((e.event_data -> 'xp')::numeric, -1e9), 1e9)::float8
               END) FILTER (WHERE e.occurred_at > %(deadlines_since)s) AS xp
    FROM public.user_activity_events e
    WHERE e.event_type = 'quest_completed'
      AND e.occurred_at > %(history_since)s AND e.occurred_at <= %(now)s
      AND e.user_id IS NOT NULL
      AND (%(user_ids)s::uuid[] IS NULL OR e.user_id = ANY (%(user_ids)s::uuid[]))
    GROUP BY 1, 2
), deadlines AS (
    SELECT a.user_id, count(*) AS quests_due,
           count(*) FILTER (WHERE c.user_id IS NULL) AS quests_missed,
           count(*) FILTER (WHERE c.done_at > a.due_at) AS quests_late
    FROM assigned a
    LEFT JOIN completions c ON c.user_id = a.user_id AND c.quest_id = a.quest_id
    WHERE a.due_at > %(deadlines_since)s AND a.due_at <= %(now)s
    GROUP BY a.user_id
), scores AS (
    SELECT user_id, count(xp) AS scored_quests, avg(xp) AS mean_xp
    FROM completions WHERE xp IS NOT NULL GROUP BY user_id
)
SELECT s.user_id, s.first_at, s.last_at,
       coalesce(k.active_days, 0) AS active_days,
       coalesce(k.longest_streak, 0) AS longest_streak,
       coalesce(k.current_streak, 0) AS current_streak,
       coalesce(l.login_events, 0) AS login_events,
       coalesce(q.quests_started, 0) AS quests_started,
       coalesce(q.quests_completed, 0) AS quests_completed,
       coalesce(ss.sessions, 0) AS sessions,
       ss.avg_session_minutes,
       coalesce(dl.quests_due, 0) AS quests_due,
       coalesce(dl.quests_missed, 0) AS quests_missed,
       coalesce(dl.quests_late, 0) AS quests_late,
       coalesce(sc.scored_quests, 0) AS scored_quests,
       sc.mean_xp,
       coalesce(r.recent_active_days, 0) AS recent_active_days
FROM on_course s
LEFT JOIN streaks k ON k.user_id = s.user_id
LEFT JOIN logins l ON l.user_id = s.user_id
LEFT JOIN quests q ON q.user_id = s.user_id
LEFT JOIN session_stats ss ON ss.user_id = s.user_id
LEFT JOIN deadlines dl ON dl.user_id = s.user_id
LEFT JOIN scores sc ON sc.user_id = s.user_id
LEFT JOIN recent r ON r.user_id = s.user_id

-- store_assessments --
-- Write (or refresh today's) risk_assessment rows, one per student and UTC day, keyed
-- score:<user>:<day>; params_key is the key of the parameters they were made with
-- (migration 0070), which at-risk-students looks today's assessments up by.
INSERT INTO public.learning_journey_events (
    user_id, occurred_at, milestone, risk_score, engagement_level, details, dedupe_key,
    params_key)
SELECT s.user_id, %(now)s, 'risk_assessment', s.score, s.level, s.details::jsonb,
       'score:' || s.user_id || ':' || %(day)s,
       waymark.risk_params_key(s.details::jsonb -> 'params')
FROM unnest(%(user_ids)s::uuid[], %(scores)s::float8[], %(levels)s::text[],
            %(details)s::text[]) AS s(user_id, score, level, details)
WHERE NOT waymark.is_forgotten(s.user_id)
ON CONFLICT (dedupe_key) DO UPDATE
   SET occurred_at = EXCLUDED.occurred_at, risk_score = EXCLUDED.risk_score,
       engagement_level = EXCLUDED.engagement_level, details = EXCLUDED.details,
       params_key = EXCLUDED.params_key

-- stored_summary --
-- Today's stored assessments (RLS applies) made with %(params)s, one per student, found by
-- the key of their parameters: the index on (params_key, occurred_at) carries the score
-- and user, so counting reads no heap row once the pages are all-visible. How many, how
-- many at or above the threshold, and when they were computed.
SELECT count(*) AS scored, count(*) FILTER (WHERE risk_score >= %(threshold)s) AS flagged,
       max(occurred_at) AS computed_at
FROM public.learning_journey_events
WHERE milestone = 'risk_assessment' AND occurred_at >= %(today)s AND occurred_at <= %(now)s
  AND params_key = waymark.risk_params_key(%(params)s::jsonb)

-- stored_flagged --
-- The flagged ones, highest first: ranked from the index, then only the returned rows'
-- factors are read from the heap.
WITH top AS (
    SELECT id FROM public.learning_journey_events
    WHERE milestone = 'risk_assessment' AND occurred_at >= %(today)s AND occurred_at <= %(now)s
      AND params_key = waymark.risk_params_key(%(params)s::jsonb)
      AND risk_score >= %(threshold)s
    ORDER BY risk_score DESC, user_id
    LIMIT %(limit)s
)
SELECT l.user_id, l.occurred_at, l.risk_score, l.engagement_level,
       l.details -> 'factors' AS factors
FROM top JOIN public.learning_journey_events l USING (id)
ORDER BY l.risk_score DESC, l.user_id

-- risk_history --
-- One user's stored assessments in (%(since)s, %(now)s], oldest first, for a chart.
SELECT occurred_at, risk_score, engagement_level
FROM public.learning_journey_events
WHERE user_id = %(user_id)s AND milestone = 'risk_assessment'
  AND occurred_at > %(since)s AND occurred_at <= %(now)s
ORDER BY occurred_at


-- ======================================================================================
-- One learner: engagement, journey, streaks
-- ======================================================================================

-- engagement --
-- Everything the engagement answer counts for %(user_id)s in (%(since)s, %(now)s], and
-- over their history their last activity and, if they have left, how and when.
WITH {{user_sessions}}, win AS (
    SELECT occurred_at, event_type, event_data ->> 'quest_id' AS quest_id
    FROM public.user_activity_events
    WHERE user_id = %(user_id)s AND occurred_at > %(since)s AND occurred_at <= %(now)s
      AND {{is_activity}}
)
SELECT (SELECT count(*) FROM sessions) AS sessions,
       (SELECT avg(seconds) FROM sessions) AS avg_session_seconds,
       (SELECT count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date) FROM win) AS active_days,
       (SELECT count(*) FROM win WHERE event_type = 'login_success') AS logins,
       (SELECT count(*) FROM win WHERE event_type = 'quest_started') AS quest_starts,
       (SELECT count(*) FROM win WHERE event_type = 'quest_completed') AS quest_completions,
       (SELECT count(DISTINCT quest_id) FROM win
         WHERE event_type IN ('quest_started', 'quest_completed')) AS quests_started,
       (SELECT count(DISTINCT quest_id) FROM win
         WHERE event_type = 'quest_completed') AS quests_completed,
       span.last_at AS last_active,
       CASE WHEN {{has_left}} THEN span.left_event END AS left_event,
       CASE WHEN {{has_left}} THEN span.left_at END AS left_at
FROM (SELECT max(occurred_at) FILTER (WHERE {{is_activity}}) AS last_at,
             max(occurred_at) FILTER (WHERE {{is_leaving}}) AS left_at,
             (array_agg(event_type ORDER BY occurred_at DESC)
                  FILTER (WHERE {{is_leaving}}))[1] AS left_event
      FROM public.user_activity_events
      WHERE user_id = %(user_id)s AND occurred_at > %(history_since)s
        AND occurred_at <= %(now)s) span

-- user_known --
-- Does Waymark hold any event of %(user_id)s after %(history_since)s (that the caller may
-- see)? Engagement and journey say so as "known", so zeros for a mistyped id do not read
-- as an idle student.
SELECT EXISTS (SELECT 1 FROM public.user_activity_events
               WHERE user_id = %(user_id)s AND occurred_at > %(history_since)s) AS known;

-- journey --
-- The journey answer's counts for %(user_id)s over their history: (%(since)s, %(now)s],
-- since being %(history_since)s.
WITH {{user_sessions}}, mine AS (
    SELECT occurred_at, event_type, event_data
    FROM public.user_activity_events
    WHERE user_id = %(user_id)s AND occurred_at > %(since)s AND occurred_at <= %(now)s
      AND event_type IN ('quest_started', 'quest_completed', 'badge_earned')
)
SELECT (SELECT min(occurred_at) FROM mine
         WHERE event_type IN ('quest_started', 'quest_completed')) AS first_quest_at,
       (SELECT count(DISTINCT event_data ->> 'quest_id') FROM mine
         WHERE event_type = 'quest_completed') AS total_quests_completed,
       (SELECT count(DISTINCT event_data ->> 'badge_id') FROM mine
         WHERE event_type = 'badge_earned') AS badges_earned,
       (SELECT coalesce(sum(seconds), 0) FROM sessions) AS seconds_on_platform,
       (SELECT count(*) FROM sessions) AS sessions

-- pillar_xp --
-- XP per pillar from %(user_id)s's completed quests (a non-numeric xp counts as 0).
SELECT event_data ->> 'pillar' AS pillar,
       sum(CASE WHEN jsonb_typeof(event_data -> 'xp') = 'number'
                THEN (event_data ->> 'xp')::numeric ELSE 0 END) AS xp,
       count(*) AS completions
FROM public.user_activity_events
WHERE user_id = %(user_id)s AND occurred_at > %(history_since)s AND occurred_at <= %(now)s
  AND event_type = 'quest_completed' AND event_data ? 'pillar'
GROUP BY 1
ORDER BY xp DESC, pillar

-- user_streaks --
-- Current and longest streak and active-day count of %(user_id)s over their events in
-- (%(history_since)s, %(now)s] (one row, zeros without events). The days are made distinct before the user
-- id is attached, so the events are sorted by day alone (hashing the id with every event
-- cost ~10 percent at 10k events a user).
WITH streak_days AS (
    SELECT %(user_id)s::uuid AS user_id, d.day
    FROM (SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date AS day
          FROM public.user_activity_events
          WHERE user_id = %(user_id)s AND occurred_at > %(history_since)s
            AND occurred_at <= %(now)s AND {{is_activity}}) d
), {{streaks}}
SELECT coalesce(max(longest_streak), 0) AS longest_streak,
       coalesce(max(current_streak), 0) AS current_streak,
       coalesce(sum(active_days), 0) AS active_days_total
FROM streaks


-- ======================================================================================
-- Event counts (event_counts.py)
-- ======================================================================================

-- event_counts --
-- Counts per category for lo <= occurred_at < hi and <= now; user_ids NULL means every
-- row RLS lets through (an explicit list lets the (user_id, time) index work).
SELECT event_category AS category, count(*) AS events
FROM public.user_activity_events
WHERE occurred_at >= %(lo)s AND occurred_at < %(hi)s AND occurred_at <= %(now)s
  AND (%(user_ids)s::uuid[] IS NULL OR user_id = ANY (%(user_ids)s::uuid[]))
GROUP BY event_category

-- rolled_hourly_counts --
SELECT event_category AS category, sum(events) AS events
FROM public.event_category_hourly
WHERE hour = ANY (%(hours)s::timestamptz[])
GROUP BY event_category

-- visible_students --
-- The students the caller may see besides themself (a parent's children, a teacher's class
-- students): the policies' own helper, so the answer and RLS cannot disagree.
SELECT unnest(waymark.visible_students()) AS user_id

-- rolled_counts --
SELECT event_category AS category, sum(events) AS events
FROM public.event_category_daily
WHERE day >= %(first_day)s AND day < %(today)s AND day = ANY (%(days)s::date[])
GROUP BY event_category


-- ======================================================================================
-- Calendar days and hours (daily.py, hourly.py)
-- ======================================================================================

-- rolled_days --
SELECT day FROM public.rollup_days WHERE day >= %(first_day)s AND day < %(today)s

-- rolled_hours --
SELECT hour FROM public.rollup_hours WHERE hour >= %(lo)s AND hour < %(hi)s


-- ======================================================================================
-- Page views (pages.py, page_prefix.py)
-- ======================================================================================

-- daily_page_stats --
-- Per (day, page) numbers from events with lo <= occurred_at < hi and <= now (what the
-- rollup stores). One sort (sessions in time order) serves views, entries and bounces;
-- distinct visitors and page exits are hashed.
WITH pv AS MATERIALIZED (
    SELECT day, page_path, visitor_hash, load_time_ms,
           row_number() OVER w AS position,
           count(*) OVER (PARTITION BY day, session_key) AS session_views
    FROM (SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, page_path, visitor_hash,
                 load_time_ms, occurred_at, event_id,
                 coalesce(session_id, event_id) AS session_key
          FROM public.user_activity_events
          WHERE event_type = 'page_view' AND page_path IS NOT NULL
            AND occurred_at >= %(lo)s AND occurred_at < %(hi)s AND occurred_at <= %(now)s) e
    WINDOW w AS (PARTITION BY day, session_key ORDER BY occurred_at, event_id)
), views AS (
    SELECT day, page_path, count(*) AS total_views,
           count(load_time_ms) AS load_time_samples,
           coalesce(sum(load_time_ms), 0) AS load_time_sum_ms,
           count(*) FILTER (WHERE position = 1) AS sessions_entered,
           count(*) FILTER (WHERE position = 1 AND session_views = 1) AS bounces
    FROM pv GROUP BY day, page_path
), uniques AS (
    SELECT day, page_path, count(*) AS unique_visitors
    FROM (SELECT DISTINCT day, page_path, visitor_hash FROM pv
          WHERE visitor_hash IS NOT NULL) v
    GROUP BY day, page_path
), exits AS (
    SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, page_path,
           count(duration_ms) AS time_on_page_samples,
           coalesce(sum(duration_ms), 0) AS time_on_page_sum_ms
    FROM public.user_activity_events
    WHERE event_type = 'page_exit' AND page_path IS NOT NULL
      AND occurred_at >= %(lo)s AND occurred_at < %(hi)s AND occurred_at <= %(now)s
    GROUP BY 1, 2
)
SELECT v.day, v.page_path, v.total_views, coalesce(u.unique_visitors, 0) AS unique_visitors,
       v.sessions_entered, v.bounces, v.load_time_samples, v.load_time_sum_ms,
       coalesce(x.time_on_page_samples, 0) AS time_on_page_samples,
       coalesce(x.time_on_page_sum_ms, 0) AS time_on_page_sum_ms
FROM views v
LEFT JOIN uniques u USING (day, page_path)
LEFT JOIN exits x USING (day, page_path)

-- rolled_up_pages --
-- The rolled-up days' sums per page (one row per page, not per page and day).
SELECT page_path, sum(total_views) AS total_views, sum(unique_visitors) AS unique_visitors,
       sum(sessions_entered) AS sessions_entered, sum(bounces) AS bounces,
       sum(load_time_samples) AS load_time_samples, sum(load_time_sum_ms) AS load_time_sum_ms,
       sum(time_on_page_samples) AS time_on_page_samples,
       sum(time_on_page_sum_ms) AS time_on_page_sum_ms
FROM public.page_view_analytics
WHERE day >= %(first_day)s AND day < %(today)s AND day = ANY (%(days)s::date[])
GROUP BY page_path

-- prefix_page_views --
-- Page views of [lo, hi) up to now, as daily_page_stats reads them.
SELECT page_path, visitor_hash, load_time_ms, occurred_at, event_id,
       coalesce(session_id, event_id) AS session_key
FROM public.user_activity_events
WHERE event_type = 'page_view' AND page_path IS NOT NULL
  AND occurred_at >= %(lo)s AND occurred_at < %(hi)s AND occurred_at <= %(now)s

-- prefix_exits --
SELECT page_path, count(duration_ms) AS time_on_page_samples,
       coalesce(sum(duration_ms), 0) AS time_on_page_sum_ms
FROM public.user_activity_events
WHERE event_type = 'page_exit' AND page_path IS NOT NULL
  AND occurred_at >= %(lo)s AND occurred_at < %(hi)s AND occurred_at <= %(now)s
GROUP BY page_path

-- prefix_pages --
-- Per page of [lo, hi): the day's sums, pages with exits only included.
INSERT INTO public.page_view_prefix_pages (
    day, page_path, total_views, unique_visitors, sessions_entered, bounces,
    load_time_samples, load_time_sum_ms, time_on_page_samples, time_on_page_sum_ms)
WITH pv AS MATERIALIZED ({{prefix_page_views}}
), ranked AS (
    SELECT page_path, visitor_hash, load_time_ms,
           row_number() OVER w AS position,
           count(*) OVER (PARTITION BY session_key) AS session_views
    FROM pv WINDOW w AS (PARTITION BY session_key ORDER BY occurred_at, event_id)
), views AS (
    SELECT page_path, count(*) AS total_views, count(load_time_ms) AS load_time_samples,
           coalesce(sum(load_time_ms), 0) AS load_time_sum_ms,
           count(*) FILTER (WHERE position = 1) AS sessions_entered,
           count(*) FILTER (WHERE position = 1 AND session_views = 1) AS bounces
    FROM ranked GROUP BY page_path
), uniques AS (
    SELECT page_path, count(*) AS unique_visitors
    FROM (SELECT DISTINCT page_path, visitor_hash FROM pv WHERE visitor_hash IS NOT NULL) v
    GROUP BY page_path
), exits AS ({{prefix_exits}}
)
SELECT %(day)s, page_path, coalesce(v.total_views, 0), coalesce(u.unique_visitors, 0),
       coalesce(v.sessions_entered, 0), coalesce(v.bounces, 0),
       coalesce(v.load_time_samples, 0), coalesce(v.load_time_sum_ms, 0),
       coalesce(x.time_on_page_samples, 0), coalesce(x.time_on_page_sum_ms, 0)
FROM views v
LEFT JOIN uniques u USING (page_path)
FULL JOIN exits x USING (page_path)

-- prefix_sessions --
INSERT INTO public.page_view_prefix_sessions (day, session_key, entry_page, views)
SELECT %(day)s, session_key, (array_agg(page_path ORDER BY occurred_at, event_id))[1],
       count(*)
FROM ({{prefix_page_views}}) pv
GROUP BY session_key

-- prefix_visitors --
INSERT INTO public.page_view_prefix_visitors (day, page_path, visitor_hash)
SELECT DISTINCT %(day)s::date, page_path, visitor_hash
FROM ({{prefix_page_views}}) pv
WHERE visitor_hash IS NOT NULL

-- mark_prefix --
INSERT INTO public.page_view_prefix (day, through, computed_at)
VALUES (%(day)s, %(hi)s, now())
ON CONFLICT (day) DO UPDATE SET through = EXCLUDED.through, computed_at = EXCLUDED.computed_at

-- clear_prefix_pages --
-- Replacing one day's prefix drops every other day's too: only today's is ever read.
DELETE FROM public.page_view_prefix_pages WHERE day <= %(day)s

-- clear_prefix_sessions --
DELETE FROM public.page_view_prefix_sessions WHERE day <= %(day)s

-- clear_prefix_visitors --
DELETE FROM public.page_view_prefix_visitors WHERE day <= %(day)s

-- clear_prefix --
DELETE FROM public.page_view_prefix WHERE day <= %(day)s

-- prefix --
SELECT through, computed_at FROM public.page_view_prefix WHERE day = %(day)s

-- late_prefix_event --
-- A page view or exit of [day start, through) received since the prefix was computed
-- (with a margin for writers whose transactions were still open then).
SELECT EXISTS (
    SELECT 1 FROM public.user_activity_events
    WHERE received_at > %(computed_at)s - interval '5 minutes'
      AND occurred_at >= %(lo)s AND occurred_at < %(hi)s
      AND event_type IN ('page_view', 'page_exit')
) AS late

-- prefix_pages_read --
SELECT page_path, total_views, unique_visitors, sessions_entered, bounces, load_time_samples,
       load_time_sum_ms, time_on_page_samples, time_on_page_sum_ms
FROM public.page_view_prefix_pages WHERE day = %(day)s

-- since_prefix --
-- The page views and exits of [lo, hi) (lo = the prefix's through) up to now, as changes
-- to the prefix's per-page sums (bounces may be negative).
WITH pv AS MATERIALIZED ({{prefix_page_views}}
), views AS (
    SELECT page_path, count(*) AS total_views, count(load_time_ms) AS load_time_samples,
           coalesce(sum(load_time_ms), 0) AS load_time_sum_ms
    FROM pv GROUP BY page_path
), sessions AS (
    SELECT session_key, (array_agg(page_path ORDER BY occurred_at, event_id))[1] AS entry_page,
           count(*) AS views
    FROM pv GROUP BY session_key
), session_changes AS (
    -- new today: entered here (a bounce with one view); already in the prefix: keeps its
    -- entry page, and is no longer a bounce if it had one view
    SELECT coalesce(p.entry_page, s.entry_page) AS page_path,
           count(*) FILTER (WHERE p.session_key IS NULL) AS sessions_entered,
           count(*) FILTER (WHERE p.session_key IS NULL AND s.views = 1)
             - count(*) FILTER (WHERE p.views = 1) AS bounces
    FROM sessions s
    LEFT JOIN public.page_view_prefix_sessions p
           ON p.day = %(day)s AND p.session_key = s.session_key
    GROUP BY 1
), new_visitors AS (
    SELECT v.page_path, count(*) AS unique_visitors
    FROM (SELECT DISTINCT page_path, visitor_hash FROM pv WHERE visitor_hash IS NOT NULL) v
    WHERE NOT EXISTS (SELECT 1 FROM public.page_view_prefix_visitors x
                      WHERE x.day = %(day)s AND x.page_path = v.page_path
                        AND x.visitor_hash = v.visitor_hash)
    GROUP BY v.page_path
), exits AS ({{prefix_exits}}
)
SELECT page_path, coalesce(v.total_views, 0) AS total_views,
       coalesce(n.unique_visitors, 0) AS unique_visitors,
       coalesce(c.sessions_entered, 0) AS sessions_entered, coalesce(c.bounces, 0) AS bounces,
       coalesce(v.load_time_samples, 0) AS load_time_samples,
       coalesce(v.load_time_sum_ms, 0) AS load_time_sum_ms,
       coalesce(x.time_on_page_samples, 0) AS time_on_page_samples,
       coalesce(x.time_on_page_sum_ms, 0) AS time_on_page_sum_ms
FROM views v
FULL JOIN session_changes c USING (page_path)
FULL JOIN new_visitors n USING (page_path)
FULL JOIN exits x USING (page_path)


-- ======================================================================================
-- Quests (quests.py)
-- ======================================================================================

-- daily_quest_stats --
-- Per (day, quest) figures for lo <= occurred_at < hi and <= now (the rollup's SQL).
SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day,
       event_data ->> 'quest_id' AS quest_id,
       max(event_data ->> 'quest_title') AS quest_title,
       count(*) FILTER (WHERE event_type = 'quest_viewed') AS views,
       count(*) FILTER (WHERE event_type = 'quest_started') AS starts,
       count(*) FILTER (WHERE event_type = 'quest_completed') AS completions
FROM public.user_activity_events
WHERE event_type IN ('quest_viewed', 'quest_started', 'quest_completed')
  AND occurred_at >= %(lo)s AND occurred_at < %(hi)s AND occurred_at <= %(now)s
  AND event_data ? 'quest_id'
GROUP BY 1, 2

-- rolled_quests --
SELECT day, quest_id, quest_title, views, starts, completions
FROM public.quest_daily
WHERE day >= %(first_day)s AND day < %(today)s AND day = ANY (%(days)s::date[])

-- rolled_hourly_quests --
SELECT quest_id, quest_title, views, starts, completions
FROM public.quest_hourly
WHERE hour = ANY (%(hours)s::timestamptz[])


-- ======================================================================================
-- Errors (errors.py)
-- ======================================================================================

-- errors_by_type --
SELECT error_type, count(*) AS errors
FROM public.error_events
WHERE occurred_at > %(since)s AND occurred_at <= %(now)s
GROUP BY error_type

-- top_error_groups --
-- Groups by occurrences in the window (not all-time), with their all-time facts beside,
-- and the group's occurrences in the window of the same length before it
-- (%(previous_since)s, %(since)s]: the trend a person reads ("rising since last week").
SELECT g.group_id, g.fingerprint, g.error_type, g.message, g.component_name, g.api_endpoint,
       g.status, g.first_seen, g.last_seen, w.errors, w.previous_errors, w.users_affected
FROM (SELECT group_id,
             count(*) FILTER (WHERE occurred_at > %(since)s) AS errors,
             count(*) FILTER (WHERE occurred_at <= %(since)s) AS previous_errors,
             count(DISTINCT user_id) FILTER (WHERE occurred_at > %(since)s) AS users_affected
      FROM public.error_events
      WHERE occurred_at > %(previous_since)s AND occurred_at <= %(now)s AND group_id IS NOT NULL
      GROUP BY group_id
      HAVING count(*) FILTER (WHERE occurred_at > %(since)s) > 0) w
JOIN public.error_groups g ON g.group_id = w.group_id
ORDER BY w.errors DESC, g.group_id
LIMIT %(limit)s

-- recent_errors --
SELECT error_id, occurred_at, error_type, message, component_name, page_path, api_endpoint,
       http_method, status_code, source, browser, os, device_type, group_id
FROM public.error_events
WHERE occurred_at > %(since)s AND occurred_at <= %(now)s
ORDER BY occurred_at DESC, error_id
LIMIT %(recent)s


-- ======================================================================================
-- Attribution (attribution.py)
-- ======================================================================================

-- live_campaigns --
-- Per (campaign, source, medium): visits, distinct (network_hash, period) and last-touch
-- conversions of the events in (since, now] outside [gap_lo, gap_hi) (the rolled-up days;
-- gap_lo = gap_hi for none), each range read by its own index scan. Yields the CTE live.
-- UTM values are client text: an e-mail address or phone number in a campaign link is
-- scrubbed (waymark.scrub_text), so neither this answer nor campaign_daily, which keeps it
-- for two years, ever holds one.
WITH visits AS (
    SELECT network_hash, occurred_at,
           coalesce(utm_campaign, '(none)') AS campaign, coalesce(utm_source, '(none)') AS source,
           coalesce(utm_medium, '(none)') AS medium,
           date_trunc(%(period)s, occurred_at, 'UTC') AS period
    FROM public.user_activity_events
    WHERE event_type = 'landing_visit' AND occurred_at > %(since)s AND occurred_at <= %(now)s
      AND occurred_at < %(gap_lo)s
    UNION ALL
    SELECT network_hash, occurred_at,
           coalesce(utm_campaign, '(none)'), coalesce(utm_source, '(none)'),
           coalesce(utm_medium, '(none)'), date_trunc(%(period)s, occurred_at, 'UTC')
    FROM public.user_activity_events
    WHERE event_type = 'landing_visit' AND occurred_at > %(since)s AND occurred_at <= %(now)s
      AND occurred_at >= %(gap_hi)s
), conversions AS (
    SELECT event_id, network_hash, occurred_at, date_trunc(%(period)s, occurred_at, 'UTC') AS period
    FROM public.user_activity_events
    WHERE event_type = 'conversion' AND occurred_at > %(since)s AND occurred_at <= %(now)s
      AND occurred_at < %(gap_lo)s
    UNION ALL
    SELECT event_id, network_hash, occurred_at, date_trunc(%(period)s, occurred_at, 'UTC')
    FROM public.user_activity_events
    WHERE event_type = 'conversion' AND occurred_at > %(since)s AND occurred_at <= %(now)s
      AND occurred_at >= %(gap_hi)s
), linked AS (
    SELECT DISTINCT ON (c.event_id) c.event_id, v.campaign, v.source, v.medium
    FROM conversions c
    JOIN visits v ON v.network_hash = c.network_hash AND v.period = c.period
                 AND v.occurred_at <= c.occurred_at
    ORDER BY c.event_id, v.occurred_at DESC
), visit_counts AS (
    SELECT campaign, source, medium, count(*) AS visits FROM visits GROUP BY 1, 2, 3
), network_counts AS (
    -- distinct (network_hash, period) per campaign, hashed rather than sorted as records
    SELECT campaign, source, medium, count(*) AS unique_networks
    FROM (SELECT DISTINCT campaign, source, medium, network_hash, period FROM visits) d
    GROUP BY 1, 2, 3
), conversion_counts AS (
    SELECT campaign, source, medium, count(*) AS conversions FROM linked GROUP BY 1, 2, 3
), unscrubbed AS (
    SELECT v.campaign, v.source, v.medium, v.visits, n.unique_networks,
           coalesce(c.conversions, 0) AS conversions
    FROM visit_counts v
    JOIN network_counts n USING (campaign, source, medium)
    LEFT JOIN conversion_counts c USING (campaign, source, medium)
), live AS (
    -- scrubbed per group, not per row (a few distinct campaigns): groups that become equal
    -- are added up, their distinct networks too (an upper bound for those rare groups)
    SELECT waymark.scrub_text(campaign) AS campaign, waymark.scrub_text(source) AS source,
           waymark.scrub_text(medium) AS medium, sum(visits)::bigint AS visits,
           sum(unique_networks)::bigint AS unique_networks,
           sum(conversions)::bigint AS conversions
    FROM unscrubbed GROUP BY 1, 2, 3
)

-- attribution --
-- live_campaigns beside the rolled-up days [gap_first_day, gap_end_day) of campaign_daily.
{{live_campaigns}}
, rolled AS (
    SELECT campaign, source, medium, visits, unique_networks, conversions
    FROM public.campaign_daily WHERE day >= %(gap_first_day)s AND day < %(gap_end_day)s
)
SELECT campaign, source, medium, sum(visits) AS visits,
       sum(unique_networks) AS unique_networks, sum(conversions) AS conversions
FROM (SELECT * FROM live UNION ALL SELECT * FROM rolled) parts
GROUP BY campaign, source, medium
ORDER BY sum(visits) DESC, sum(conversions) DESC, campaign, source, medium

-- insert_campaigns --
-- One closed day's rows for campaign_daily (the rollup job), linked within the day.
INSERT INTO public.campaign_daily (day, campaign, source, medium, visits, unique_networks,
                                   conversions)
{{live_campaigns}}
SELECT %(day)s, campaign, source, medium, visits, unique_networks, conversions FROM live

-- campaign_days --
-- Closed days whose campaign rows are complete (RLS: admins only).
SELECT day FROM public.rollup_days
WHERE campaigns AND day >= %(first)s AND day <= %(last)s
ORDER BY day

-- total_conversions --
SELECT count(*) AS conversions FROM public.user_activity_events
WHERE event_type = 'conversion' AND occurred_at > %(since)s AND occurred_at <= %(now)s


-- ======================================================================================
-- The rollup jobs (rollup.py)
-- ======================================================================================

-- days_to_roll --
-- Closed days in [first_day, today) not rolled up yet, or rolled up before an event for
-- them was received (checked from stale_from on; with a margin for writers whose
-- transactions were still open when the day was computed). Only events received since the
-- oldest such computation are read, through the BRIN index on received_at.
WITH rolled AS (
    SELECT day, computed_at FROM public.rollup_days
    WHERE day >= %(stale_from)s::date AND day < %(today)s::date
), late AS (
    SELECT DISTINCT (e.occurred_at AT TIME ZONE 'UTC')::date AS day, e.received_at
    FROM public.user_activity_events e
    WHERE e.received_at > (SELECT min(computed_at) - interval '5 minutes' FROM rolled)
      AND e.occurred_at >= (%(stale_from)s::date::timestamp AT TIME ZONE 'UTC')
      AND e.occurred_at < (%(today)s::date::timestamp AT TIME ZONE 'UTC')
)
SELECT d::date AS day
FROM generate_series(%(first_day)s::date, %(today)s::date - 1, interval '1 day') AS d
LEFT JOIN public.rollup_days r ON r.day = d::date
WHERE r.day IS NULL OR NOT r.campaigns
   OR EXISTS (SELECT 1 FROM late l JOIN rolled ro USING (day)
              WHERE l.day = d::date AND l.received_at > ro.computed_at - interval '5 minutes')
ORDER BY 1

-- first_day --
-- Where to start looking: the first rolled-up day, or (first run) the first event's day.
SELECT coalesce((SELECT min(day) FROM public.rollup_days),
                (SELECT (min(occurred_at) AT TIME ZONE 'UTC')::date
                 FROM public.user_activity_events)) AS day

-- delete_day_pages --
DELETE FROM public.page_view_analytics WHERE day = %(day)s

-- delete_day_categories --
DELETE FROM public.event_category_daily WHERE day = %(day)s

-- delete_day_quests --
DELETE FROM public.quest_daily WHERE day = %(day)s

-- delete_day_campaigns --
DELETE FROM public.campaign_daily WHERE day = %(day)s

-- insert_pages --
INSERT INTO public.page_view_analytics (
    day, page_path, total_views, unique_visitors, bounce_rate, avg_load_time_ms,
    avg_time_on_page_ms, computed_at, sessions_entered, bounces, load_time_samples,
    load_time_sum_ms, time_on_page_samples, time_on_page_sum_ms)
SELECT day, page_path, total_views, unique_visitors,
       CASE WHEN sessions_entered > 0 THEN bounces::float8 / sessions_entered END,
       CASE WHEN load_time_samples > 0 THEN load_time_sum_ms::float8 / load_time_samples END,
       CASE WHEN time_on_page_samples > 0
            THEN time_on_page_sum_ms::float8 / time_on_page_samples END,
       now(), sessions_entered, bounces, load_time_samples, load_time_sum_ms,
       time_on_page_samples, time_on_page_sum_ms
FROM ({{daily_page_stats}}) stats

-- insert_categories --
INSERT INTO public.event_category_daily (day, event_category, events)
SELECT %(day)s, event_category, count(*)
FROM public.user_activity_events
WHERE occurred_at >= %(lo)s AND occurred_at < %(hi)s
GROUP BY event_category

-- insert_quests --
INSERT INTO public.quest_daily (day, quest_id, quest_title, views, starts, completions)
SELECT day, quest_id, quest_title, views, starts, completions
FROM ({{daily_quest_stats}}) stats

-- mark_day --
INSERT INTO public.rollup_days (day, computed_at, campaigns) VALUES (%(day)s, now(), true)
ON CONFLICT (day) DO UPDATE SET computed_at = EXCLUDED.computed_at, campaigns = true

-- hours_to_roll --
-- Today's closed hours not rolled up yet, or rolled up before an event for them arrived.
WITH rolled AS (
    SELECT hour, computed_at FROM public.rollup_hours
    WHERE hour >= %(today_start)s AND hour < %(current_hour)s
), late AS (
    SELECT DISTINCT date_trunc('hour', e.occurred_at, 'UTC') AS hour, e.received_at
    FROM public.user_activity_events e
    WHERE e.received_at > (SELECT min(computed_at) - interval '5 minutes' FROM rolled)
      AND e.occurred_at >= %(today_start)s AND e.occurred_at < %(current_hour)s
)
SELECT h AS hour
FROM generate_series(%(today_start)s::timestamptz, %(current_hour)s::timestamptz
                     - interval '1 hour', interval '1 hour') AS h
LEFT JOIN rolled r ON r.hour = h
WHERE r.hour IS NULL
   OR EXISTS (SELECT 1 FROM late l WHERE l.hour = h
              AND l.received_at > r.computed_at - interval '5 minutes')
ORDER BY 1

-- delete_hour_categories --
DELETE FROM public.event_category_hourly WHERE hour = %(hour)s

-- delete_hour_quests --
DELETE FROM public.quest_hourly WHERE hour = %(hour)s

-- insert_hourly_categories --
INSERT INTO public.event_category_hourly (hour, event_category, events)
SELECT %(hour)s, event_category, count(*)
FROM public.user_activity_events
WHERE occurred_at >= %(lo)s AND occurred_at < %(hi)s
GROUP BY event_category

-- insert_hourly_quests --
INSERT INTO public.quest_hourly (hour, quest_id, quest_title, views, starts, completions)
SELECT %(hour)s, quest_id, quest_title, views, starts, completions
FROM ({{daily_quest_stats}}) stats

-- mark_hour --
INSERT INTO public.rollup_hours (hour, computed_at) VALUES (%(hour)s, now())
ON CONFLICT (hour) DO UPDATE SET computed_at = EXCLUDED.computed_at

-- forget_past_hour_categories --
-- Hours of past days are never read (those days come from the daily rollups).
DELETE FROM public.event_category_hourly WHERE hour < %(today_start)s

-- forget_past_hour_quests --
DELETE FROM public.quest_hourly WHERE hour < %(today_start)s

-- forget_past_hours --
DELETE FROM public.rollup_hours WHERE hour < %(today_start)s


-- ======================================================================================
-- Students and classes (students.py, classes.py)
-- ======================================================================================

-- latest_assessment --
-- LATERAL join: the newest stored risk assessment of s.user_id at or before %(now)s (the
-- (user_id, occurred_at) index, read backwards); columns a.risk_score, a.engagement_level,
-- a.assessed_at, a.factors, a.params.
LEFT JOIN LATERAL (
    SELECT l.risk_score, l.engagement_level, l.occurred_at AS assessed_at,
           l.details -> 'factors' AS factors, l.details -> 'params' AS params
    FROM public.learning_journey_events l
    WHERE l.user_id = s.user_id AND l.milestone = 'risk_assessment'
      AND l.occurred_at <= %(now)s
    ORDER BY l.occurred_at DESC
    LIMIT 1
) a ON true

-- roster --
-- The students the caller may see (RLS applies to every table read): an admin every student
-- (who has events, attends a class or is linked to a parent), anyone else the policies'
-- helper waymark.visible_students(). Yields roster (user_id); use after WITH RECURSIVE.
{{every_user_id}}, span_ids AS (
    SELECT user_id FROM ids WHERE user_id IS NOT NULL AND (SELECT waymark.is_admin())
), {{spans_of_ids}}, {{students}}, roster AS (
    SELECT user_id FROM students
    UNION
    SELECT m.user_id FROM public.class_memberships m
    WHERE m.member_role = 'student' AND (SELECT waymark.is_admin())
    UNION
    SELECT g.student_id FROM public.guardian_links g WHERE (SELECT waymark.is_admin())
    UNION
    SELECT unnest(waymark.visible_students())
)

-- students_page --
-- One page of the caller's students, most at risk first (unscored last), with the total
-- before paging. %(class_id)s, %(prefix)s (of the id's text) and %(level)s (an engagement
-- level) filter when not NULL. An empty page still yields one row carrying the total.
WITH RECURSIVE {{roster}}, chosen AS (
    SELECT r.user_id FROM roster r
    WHERE (%(class_id)s::uuid IS NULL OR EXISTS (
              SELECT 1 FROM public.class_memberships m
              WHERE m.class_id = %(class_id)s::uuid AND m.member_role = 'student'
                AND m.user_id = r.user_id))
      AND (%(prefix)s::text IS NULL OR r.user_id::text LIKE %(prefix)s::text || '%%')
), assessed AS (
    SELECT s.user_id, a.risk_score, a.engagement_level, a.assessed_at,
           (SELECT w.risk_score FROM public.learning_journey_events w
            WHERE w.user_id = s.user_id AND w.milestone = 'risk_assessment'
              AND w.occurred_at <= %(week_ago)s
            ORDER BY w.occurred_at DESC LIMIT 1) AS risk_score_7d_ago
    FROM chosen s
    {{latest_assessment}}
    WHERE %(level)s::text IS NULL OR a.engagement_level = %(level)s::text
), page AS (
    SELECT * FROM assessed
    ORDER BY risk_score DESC NULLS LAST, user_id
    LIMIT %(limit)s OFFSET %(offset)s
)
SELECT (SELECT count(*) FROM assessed) AS total, p.user_id, p.risk_score, p.engagement_level,
       p.assessed_at, p.risk_score_7d_ago,
       (SELECT max(e.occurred_at) FROM public.user_activity_events e
        WHERE e.user_id = p.user_id AND e.occurred_at > %(history_since)s
          AND e.occurred_at <= %(now)s AND {{is_activity}}) AS last_active_at,
       (SELECT jsonb_build_object('action', i.action, 'actor_role', i.actor_role,
                                  'created_at', i.created_at)
        FROM public.interventions i WHERE i.student_id = p.user_id
        ORDER BY i.created_at DESC LIMIT 1) AS last_intervention,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('class_id', k.class_id, 'name', k.name)
                                  ORDER BY k.name, k.class_id), '[]'::jsonb)
        FROM public.class_memberships m JOIN public.classes k USING (class_id)
        WHERE m.user_id = p.user_id AND m.member_role = 'student') AS classes
FROM (SELECT 1) one
LEFT JOIN page p ON true
ORDER BY p.risk_score DESC NULLS LAST, p.user_id

-- classes --
-- The classes the caller may read (RLS: a teacher those they teach, a student or parent
-- those attended, an admin all), with the members the caller may read counted.
SELECT k.class_id, k.name, k.created_at,
       count(m.user_id) FILTER (WHERE m.member_role = 'student') AS student_count,
       count(m.user_id) FILTER (WHERE m.member_role = 'teacher') AS teacher_count
FROM public.classes k
LEFT JOIN public.class_memberships m ON m.class_id = k.class_id
GROUP BY k.class_id
ORDER BY k.name, k.class_id

-- teaches_class --
-- Whether the caller teaches this class (the same helper the policies use).
SELECT %(class_id)s::uuid = ANY (waymark.taught_classes()) AS teaches

-- class_roster --
-- One class as the caller may read it, with its students' ids (none if RLS hides it).
SELECT k.class_id, k.name,
       coalesce(array_agg(m.user_id ORDER BY m.user_id)
                FILTER (WHERE m.user_id IS NOT NULL), '{}') AS students
FROM public.classes k
LEFT JOIN public.class_memberships m
       ON m.class_id = k.class_id AND m.member_role = 'student'
WHERE k.class_id = %(class_id)s
GROUP BY k.class_id

-- class_daily --
-- Per UTC day of (since, now]: how many of the class's students were active, and their
-- events (activity only: the work assigned to them is no event of theirs).
SELECT (e.occurred_at AT TIME ZONE 'UTC')::date AS day,
       count(DISTINCT e.user_id) AS active_students, count(*) AS events
FROM public.user_activity_events e
WHERE e.user_id = ANY (%(students)s::uuid[])
  AND e.occurred_at > %(since)s AND e.occurred_at <= %(now)s AND {{is_activity}}
GROUP BY 1
ORDER BY 1

-- class_categories --
-- Events by category in (since, now] for the class's students, with how many students
-- each count describes; the last row (category NULL) is every category together.
SELECT e.event_category::text AS category, count(*) AS events,
       count(DISTINCT e.user_id) AS students
FROM public.user_activity_events e
WHERE e.user_id = ANY (%(students)s::uuid[])
  AND e.occurred_at > %(since)s AND e.occurred_at <= %(now)s
GROUP BY ROLLUP (e.event_category)
ORDER BY e.event_category NULLS LAST

-- class_quests --
-- Per quest in (since, now], the class's students' views, starts and completions (the
-- popularity figures of popular-quests), and how many students each row describes.
SELECT e.event_data ->> 'quest_id' AS quest_id,
       max(e.event_data ->> 'quest_title') AS quest_title,
       count(*) FILTER (WHERE e.event_type = 'quest_viewed') AS views,
       count(*) FILTER (WHERE e.event_type = 'quest_started') AS starts,
       count(*) FILTER (WHERE e.event_type = 'quest_completed') AS completions,
       count(DISTINCT e.user_id) AS students
FROM public.user_activity_events e
WHERE e.user_id = ANY (%(students)s::uuid[])
  AND e.event_type IN ('quest_viewed', 'quest_started', 'quest_completed')
  AND e.occurred_at > %(since)s AND e.occurred_at <= %(now)s
  AND e.event_data ? 'quest_id'
GROUP BY 1

-- class_quest_students --
-- How many of the class's students started a quest, and completed one, in (since, now].
SELECT count(DISTINCT e.user_id) FILTER (WHERE e.event_type = 'quest_started') AS started,
       count(DISTINCT e.user_id) FILTER (WHERE e.event_type = 'quest_completed') AS completed
FROM public.user_activity_events e
WHERE e.user_id = ANY (%(students)s::uuid[])
  AND e.event_type IN ('quest_started', 'quest_completed')
  AND e.occurred_at > %(since)s AND e.occurred_at <= %(now)s

-- class_assessments --
-- Each of the class's students with their newest stored assessment (NULLs if unscored).
SELECT s.user_id, a.risk_score, a.engagement_level, a.assessed_at, a.factors, a.params
FROM unnest(%(students)s::uuid[]) AS s(user_id)
{{latest_assessment}}
ORDER BY a.risk_score DESC NULLS LAST, s.user_id


-- ======================================================================================
-- Risk self-calibration (risk/calibrate.py, risk/parameter_sets.py; migration 0140)
-- ======================================================================================

-- risk_outcomes --
-- Each user's first outcome event (e.g. course_withdrawn) at or before %(until)s: the
-- labels of a calibration. Nothing after %(until)s is read.
SELECT user_id, min(occurred_at) AS outcome_at
FROM public.user_activity_events
WHERE event_type = %(outcome)s AND occurred_at <= %(until)s
GROUP BY user_id

-- risk_set_active --
-- The active parameter set, if any.
SELECT id, params, fitted_at, outcome, fit_at, validate_at, validated_until, validation
FROM public.risk_parameter_sets WHERE active

-- risk_sets --
-- Every stored parameter set, the active one first, then newest first (a row per
-- calibration: a handful).
SELECT id, params, fitted_at, validation
FROM public.risk_parameter_sets ORDER BY active DESC, id DESC

-- risk_set_retire_active --
UPDATE public.risk_parameter_sets SET active = false, retired_at = %(now)s
WHERE active RETURNING id

-- risk_set_insert --
INSERT INTO public.risk_parameter_sets
    (params, fitted_at, outcome, fit_at, validate_at, validated_until, validation, active)
VALUES (%(params)s, %(now)s, %(outcome)s, %(fit_at)s, %(validate_at)s, %(validated_until)s,
        %(validation)s, true)
RETURNING id

-- risk_set_activate_before --
-- Roll back: the newest set older than %(id)s becomes active again.
UPDATE public.risk_parameter_sets SET active = true, retired_at = NULL
WHERE id = (SELECT max(id) FROM public.risk_parameter_sets WHERE id < %(id)s)
RETURNING id


-- ======================================================================================
-- Dashboard overview (overview.py)
-- ======================================================================================

-- activity_daily --
-- Visitors, sessions and page views per UTC day from %(first_day)s to %(today)s: a visitor
-- is a signed-in user or, anonymously, a visitor hash, with an activity event that day (a
-- quest assigned to an absent student is no visit); a session is the session id the
-- writer gave the event; a page view is a page_view event. Days without an event are
-- listed with zeros so a chart's x axis has no holes.
WITH days AS (
    SELECT d::date AS day FROM generate_series(%(first_day)s::date, %(today)s::date,
                                               interval '1 day') AS d
), per_day AS (
    SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day,
           count(DISTINCT coalesce(user_id::text, encode(visitor_hash, 'hex')))
               FILTER (WHERE {{is_activity}}) AS visitors,
           count(DISTINCT session_id) AS sessions,
           count(*) FILTER (WHERE event_type = 'page_view') AS page_views
    FROM public.user_activity_events
    WHERE occurred_at >= %(lo)s AND occurred_at <= %(now)s
    GROUP BY 1
)
SELECT days.day, coalesce(visitors, 0) AS visitors, coalesce(sessions, 0) AS sessions,
       coalesce(page_views, 0) AS page_views
FROM days LEFT JOIN per_day USING (day)
ORDER BY days.day

-- activity_period --
-- The same figures for one whole period [%(lo)s, %(hi)s): a visitor counts once however
-- many days they came (anonymous visitors once per salt period), so this is not the sum
-- of the days.
SELECT count(DISTINCT coalesce(user_id::text, encode(visitor_hash, 'hex')))
           FILTER (WHERE {{is_activity}}) AS visitors,
       count(DISTINCT session_id) AS sessions,
       count(*) FILTER (WHERE event_type = 'page_view') AS page_views
FROM public.user_activity_events
WHERE occurred_at >= %(lo)s AND occurred_at < %(hi)s

-- sessions_by_device --
-- Sessions per device type in [%(lo)s, %(now)s], most first (events outside a session,
-- such as the app's own records for a student, name no device anyone used).
SELECT coalesce(device_type::text, 'unknown') AS device_type, count(DISTINCT session_id) AS sessions
FROM public.user_activity_events
WHERE occurred_at >= %(lo)s AND occurred_at <= %(now)s AND session_id IS NOT NULL
GROUP BY 1 ORDER BY 2 DESC, 1

-- live_events --
-- Events in (%(since)s, %(now)s]: the dashboard's live counter (a short range of the
-- occurred_at index, so it stays cheap however many events there are).
SELECT count(*) AS events,
       count(DISTINCT coalesce(user_id::text, encode(visitor_hash, 'hex')))
           FILTER (WHERE {{is_activity}}) AS visitors
FROM public.user_activity_events
WHERE occurred_at > %(since)s AND occurred_at <= %(now)s

-- risk_distribution_daily --
-- How many stored assessments fell in each engagement level per UTC day in
-- [%(lo)s, %(now)s] (`waymark score` stores one per student and day).
SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, engagement_level, count(*) AS students
FROM public.learning_journey_events
WHERE milestone = 'risk_assessment' AND occurred_at >= %(lo)s AND occurred_at <= %(now)s
GROUP BY 1, 2 ORDER BY 1, 2

-- recent_activity --
-- One user's latest learning events (quests, badges) up to %(now)s, newest first, with the
-- quest's title and pillar as the event carried them.
SELECT occurred_at, event_type, event_data ->> 'quest_id' AS quest_id,
       event_data ->> 'quest_title' AS quest_title, event_data ->> 'pillar' AS pillar,
       event_data ->> 'badge_id' AS badge_id, (event_data ->> 'xp') AS xp
FROM public.user_activity_events
WHERE user_id = %(user_id)s AND occurred_at <= %(now)s
  AND event_type IN ('quest_started', 'quest_completed', 'badge_earned')
ORDER BY occurred_at DESC
LIMIT %(limit)s

-- referrer_sources --
-- Sessions in [%(lo)s, %(now)s] by the host that referred them (Plausible's "Sources"):
-- only the host of a stored referrer (ingestion already dropped its query), without
-- "www.". Only rows with a referrer are grouped (the dashboard loads this beside the
-- activity card's scans); direct (source NULL) is every other session: no referrer, or
-- referred by one of %(own_hosts)s (the site's own pages). Most sessions first.
WITH referred AS (
    SELECT session_id,
           min(lower(substring(referrer FROM '^[A-Za-z][A-Za-z0-9+.-]*://(?:www\.)?([^/:?#@]+)')))
               AS host
    FROM public.user_activity_events
    WHERE occurred_at >= %(lo)s AND occurred_at <= %(now)s AND session_id IS NOT NULL
      AND referrer IS NOT NULL
    GROUP BY session_id
), external AS (
    SELECT host FROM referred WHERE NOT host = ANY(%(own_hosts)s::text[])
)
SELECT host AS source, count(*) AS sessions FROM external GROUP BY 1
UNION ALL
SELECT NULL, (SELECT count(DISTINCT session_id) FROM public.user_activity_events
              WHERE occurred_at >= %(lo)s AND occurred_at <= %(now)s
                AND session_id IS NOT NULL) - (SELECT count(*) FROM external)
ORDER BY 2 DESC, 1 NULLS FIRST
LIMIT %(limit)s

-- risk_student_classes --
-- The classes each student attends (the cohorts of the cohort-relative risk factors,
-- docs/risk.md); RLS applies: a caller sees the memberships they may see.
-- %(user_ids)s NULL: every student's; else only theirs (one index probe each).
SELECT user_id, array_agg(class_id ORDER BY class_id) AS class_ids
FROM public.class_memberships
WHERE member_role = 'student'
  AND (%(user_ids)s::uuid[] IS NULL OR user_id = ANY (%(user_ids)s::uuid[]))
GROUP BY user_id

-- risk_cohort_medians --
-- The cohort medians of the last `waymark score` the caller may read (migration 0141):
-- the population's row (class_id NULL) and their visible classes'.
SELECT class_id, median_active_days, median_xp, median_missed_share, median_late_share, students
FROM public.risk_cohort_medians

-- risk_cohort_medians_clear --
DELETE FROM public.risk_cohort_medians

-- risk_cohort_median_save --
INSERT INTO public.risk_cohort_medians (class_id, median_active_days, median_xp,
                                        median_missed_share, median_late_share, students,
                                        computed_at)
VALUES (%(class_id)s, %(median_active_days)s, %(median_xp)s, %(median_missed_share)s,
        %(median_late_share)s, %(students)s, %(computed_at)s)
