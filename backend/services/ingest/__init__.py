"""The ingest pipeline: how an accepted event becomes a row.

validation (typed, bounded fields) → items (the queue item) → writer (queue and threads) →
privacy_step (user agent reduced, visitor hash made, raw facts dropped) → session_segments
(events joined into sessions) → copy_payload (the binary COPY) → the store transaction;
pacing shares the GIL with a busy host; error_groups files error reports by fingerprint.
"""
