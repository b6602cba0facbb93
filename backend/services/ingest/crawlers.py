"""The crawler check both ways into the pipeline answer with (``EventWriter`` in-process,
``StreamPublisher`` in the JetStream mode): the routes ask it before queueing."""

from __future__ import annotations

from collections import Counter

from backend.services.ingest.privacy_step import PrivacyStep


class CrawlerCheck:
    """Mixed into a writer that has ``privacy`` and a ``dropped`` counter."""

    privacy: PrivacyStep
    dropped: Counter[str]

    def is_crawler(self, user_agent: str | None) -> bool:
        """Whether a request comes from a crawler (counted as dropped): app-launch pings
        answer 204 for crawlers at once instead of queueing what would be dropped anyway."""
        if self.crawler_reason(user_agent) is None:
            return False
        self.dropped["crawler:sessions"] += 1
        return True

    def crawler_reason(self, user_agent: str | None) -> str | None:
        """Why the privacy step will drop this user agent as a crawler, or None (no count)."""
        return self.privacy.reduce(user_agent or "").bot_reason
