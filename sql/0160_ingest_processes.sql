-- Each ingestion process's counters (docs/ingestion.md "Health"): every gunicorn worker's
-- in-process writer, every JetStream publisher (app node) and every `waymark writer`
-- process upserts its own row every few seconds, so /health can sum them: one answer,
-- whichever worker is asked. Counters only (totals since that process started); no
-- personal data. Rows of processes gone quiet are ignored by /health and deleted by
-- `waymark purge`.
CREATE TABLE IF NOT EXISTS waymark.ingest_processes (
    process     text PRIMARY KEY,             -- host:pid:role:random
    role        text NOT NULL CHECK (role IN ('in-process', 'publisher', 'writer')),
    counters    jsonb NOT NULL,
    started_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE waymark.ingest_processes IS
    'Ingestion counters per process (heartbeat), summed by /health; no personal data.';
