"""Alerts, digests and interventions: from a stored risk score to a person who acts, and back.

``interventions`` records what people did (under RLS, as the caller) and measures what
followed; ``crossings`` finds students whose stored risk crossed the alert threshold;
``deliveries`` sends each alert once over the webhook and e-mail channels; ``digest``
writes the weekly summary; ``backtest`` measures lead time. See docs/alerts.md.
"""

from __future__ import annotations

from backend.queries import Queries

#: Every named statement of ``queries.sql``.
QUERIES = Queries.load(__name__)
