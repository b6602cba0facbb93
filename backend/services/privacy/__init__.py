"""The privacy machinery: keyed hashes and their salts, forget and its tombstones, export,
and retention (anonymize, purge). The ingest pipeline and analytics build on it; it builds
on nothing above the foundations. Its SQL is in ``queries.sql``, by name."""

from __future__ import annotations

from backend.queries import Queries

QUERIES = Queries.load(__name__)
