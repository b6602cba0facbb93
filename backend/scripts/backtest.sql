-- `waymark risk-backtest` (backend/scripts/backtest.py): the deployment's own history.

-- outcomes --
-- Each user's first outcome event (e.g. course_withdrawn): the thing the score should
-- have seen coming.
SELECT user_id, min(occurred_at) AS outcome_at
FROM public.user_activity_events
WHERE event_type = %(outcome)s AND user_id IS NOT NULL
GROUP BY user_id

-- first_event --
-- When the history begins (the backtest's first scoring step).
SELECT min(occurred_at) AS first_at FROM public.user_activity_events
