"""Analytics over events, one module per concern; every function takes a connection.

The connection already carries the caller's identity (``Database.as_user``), so
row-level security decides which rows any query here sees. Every function takes
``now`` explicitly (never the database clock), so answers are reproducible and tests
can pin time. Windows are ``(now − days, now]`` unless a module says otherwise.

The SQL lives in ``queries.sql`` beside this file, loaded once here: each module reads
its statements by name from :data:`QUERIES`, and the definitions several answers share
(a session, a streak, who is a student) are written once there and included where used.
What the numbers mean: docs/analytics.md and docs/risk.md.
"""

from __future__ import annotations

from backend.queries import Queries

#: Every named statement of ``queries.sql``, includes resolved.
QUERIES = Queries.load(__name__)
