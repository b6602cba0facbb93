"""The ingest pipeline: how an accepted event becomes a row.

validation (typed, bounded fields) → items (the queue item) → writer (bounded_queue and two
threads) → prepare (privacy_step: user agent reduced, visitor hash made, raw facts dropped;
session_segments; copy_payload) → batch (the typed hand-over) → store (one transaction:
forget lock, tombstones, sessions, COPY, error_groups, dead letters). pacing shares the GIL
with a busy host. Every statement is in queries.sql; docs/architecture.md draws the path.
"""
