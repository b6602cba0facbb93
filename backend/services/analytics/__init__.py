"""Analytics over events, one module per concern; every function takes a connection.

The connection already carries the caller's identity (``Database.as_user``), so
row-level security decides which rows any query here sees. Every function takes
``now`` explicitly (never the database clock), so answers are reproducible and tests
can pin time. Windows are ``(now − days, now]`` unless a module says otherwise.
"""

from __future__ import annotations
