-- The time-range queries of the analytics read the occurred_at BRIN indexes. A BRIN
-- index only covers block ranges that have been summarized; without autosummarize that
-- happens at the next VACUUM, and until then every range query reads those blocks all.
-- With autosummarize, autovacuum summarizes each range as soon as it fills up.

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['user_activity_events_occurred_brin',
                                'error_events_occurred_brin',
                                'learning_journey_events_occurred_brin'] LOOP
        IF to_regclass('public.' || name) IS NOT NULL THEN
            EXECUTE format('ALTER INDEX public.%I SET (autosummarize = on)', name);
        END IF;
    END LOOP;
END
$$;
