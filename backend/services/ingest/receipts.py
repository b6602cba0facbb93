"""Receipts: how an ingestion request learns that its events are committed.

Our promise (docs/ingestion.md) is that 202 means stored: an ingestion endpoint queues its
events with a :class:`Receipt` and waits on it; the writer settles the receipt once the
transaction that holds those events has committed (or the events were dropped on purpose: a crawler, a
forgotten user, the host's ``before_store`` hook), and fails it when it gives them up at
exit. A bounded wait that runs out means "not known to be stored" and is answered 503, so
the client keeps the event and retries (an ``event_id`` makes the retry idempotent).

:class:`Claims` maps queued items to their receipts without touching the items, so nothing
of this bookkeeping can ever reach a row.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any


class Receipt:
    """The outcome of one request's events: pending, stored, or given up."""

    def __init__(self, count: int) -> None:
        self._left = count
        self._failed = False
        self._lock = threading.Lock()
        self._settled = threading.Event()
        if count <= 0:
            self._settled.set()

    def settle(self, count: int) -> None:
        """``count`` of its events are committed (or dropped on purpose)."""
        with self._lock:
            self._left -= count
            if self._left <= 0:
                self._settled.set()

    def fail(self) -> None:
        """The writer gave these events up (closing): the request must not answer 202."""
        with self._lock:
            self._failed = True
            self._settled.set()

    def wait(self, timeout: float) -> bool:
        """True once every event is stored; False on failure or when ``timeout`` runs out."""
        return self._settled.wait(timeout) and not self._failed


class Claims:
    """Which queued items belong to which receipt (keyed by the item's identity)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_item: dict[int, Receipt] = {}

    def add(self, items: Iterable[Any], receipt: Receipt) -> None:
        """Register items before they are queued (the writer may take them at once)."""
        with self._lock:
            for item in items:
                self._by_item[id(item)] = receipt

    def take(self, items: Iterable[Any]) -> Counter[Receipt]:
        """The receipts of ``items`` (how many items each), forgetting them."""
        taken: Counter[Receipt] = Counter()
        with self._lock:
            for item in items:
                receipt = self._by_item.pop(id(item), None)
                if receipt is not None:
                    taken[receipt] += 1
        return taken

    def any_of(self, items: Iterable[Any]) -> bool:
        """Whether someone waits for any of ``items`` (their batch should go now)."""
        with self._lock:
            return any(id(item) in self._by_item for item in items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_item)


def settle_all(receipts: Counter[Receipt]) -> None:
    """Settle each receipt for its share of a committed batch."""
    for receipt, count in receipts.items():
        receipt.settle(count)


def fail_all(receipts: Counter[Receipt]) -> None:
    """Fail each receipt of a batch given up."""
    for receipt in receipts:
        receipt.fail()
