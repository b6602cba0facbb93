"""Classes and who is in them: the writes behind `waymark classes` and the admin endpoints.

Memberships decide what a teacher may see (docs/access.md), so they are written only by
the service connection, never by an API role (RLS has no write policy on them). Reads
for users go through the analytics package, under RLS.
"""

from __future__ import annotations

from backend.queries import Queries

#: Every named statement of ``queries.sql``.
QUERIES = Queries.load(__name__)
