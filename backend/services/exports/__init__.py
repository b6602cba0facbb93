"""Data that leaves: incremental warehouse exports, with the deletions that must follow them.

``warehouse`` writes what is new in the event tables since a target's last run as
day-partitioned Parquet or NDJSON, the schema files a warehouse loads them with, and a
manifest of the forgets, anonymizations and purges since then. See docs/exports.md.
"""

from __future__ import annotations

from backend.queries import Queries

#: Every named statement of ``queries.sql``.
QUERIES = Queries.load(__name__)
