-- Partitioning user_activity_events, step 2 of 3: prove every stored event is before the
-- cut-over. VALIDATE reads the whole table under SHARE UPDATE EXCLUSIVE, which lets
-- inserts, updates and deletes go on (a separate migration, so it runs in a transaction
-- of its own without 0150's lock).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint
               WHERE conrelid = 'public.user_activity_events'::regclass
                 AND conname = 'user_activity_events_legacy_range' AND NOT convalidated) THEN
        ALTER TABLE public.user_activity_events VALIDATE CONSTRAINT user_activity_events_legacy_range;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_constraint
               WHERE conrelid = 'public.user_activity_events'::regclass
                 AND conname = 'user_activity_events_event_type_shape' AND NOT convalidated) THEN
        ALTER TABLE public.user_activity_events VALIDATE CONSTRAINT user_activity_events_event_type_shape;
    END IF;
END
$$;
