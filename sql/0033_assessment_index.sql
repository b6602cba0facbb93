-- at-risk-students reads today's stored risk assessments (waymark score): a partial
-- index keeps that read small however many milestone rows the table holds.
CREATE INDEX IF NOT EXISTS learning_journey_events_assessments
    ON public.learning_journey_events (occurred_at, risk_score)
    WHERE milestone = 'risk_assessment';
