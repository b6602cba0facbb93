"""The writer's bounded queue: ``queue.Queue`` plus the few batch operations the writer needs.

Request threads put items without ever waiting; the writer takes them a batch at a time and
marks them done once stored. Every operation that touches the queue's internals (its deque,
``unfinished_tasks``, the lock and its conditions) is a method of this class, under the
queue's own lock, so nobody else reaches into them.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

#: ``queue.Full`` and ``queue.Empty``, re-exported so callers need not import ``queue``.
Full = queue.Full
Empty = queue.Empty


class BoundedQueue(queue.Queue[T]):
    """A FIFO of at most ``maxsize`` items and ``max_cost`` estimated bytes, with
    all-or-nothing puts and batch takes.

    A count alone does not bound memory: one item of many tiny JSON objects costs a
    hundred times another. ``cost`` estimates an item's bytes once, when it is put.
    """

    def __init__(self, maxsize: int, *, max_cost: int = 0,
                 cost: Callable[[T], int] | None = None) -> None:
        super().__init__(maxsize=maxsize)
        self.max_cost = max_cost
        self.cost = cost
        self.costs: dict[int, int] = {}  # id(item) → its cost, while queued
        self.total_cost = 0

    def put_all(self, items: Sequence[T]) -> bool:
        """Queue every item, or none (False) when they do not all fit; never waits.

        All-or-nothing under one lock, so a client told 503 resends the whole batch and one
        told 202 can forget it: no batch is ever half accepted.
        """
        costs = [self.cost(item) for item in items] if self.cost is not None else []
        with self.not_full:
            if self.maxsize > 0 and self.maxsize - self._qsize() < len(items):
                return False
            if self.max_cost > 0 and self.total_cost + sum(costs) > self.max_cost:
                return False
            for item, cost in zip(items, costs, strict=False):
                self.costs[id(item)] = cost
            self.total_cost += sum(costs)
            for item in items:
                self._put(item)
            self.unfinished_tasks += len(items)
            self.not_empty.notify(len(items))
        return True

    def take(self, limit: int) -> list[T]:
        """Up to ``limit`` queued items at once, without waiting (one lock, not one per item)."""
        with self.mutex:
            count = min(limit, self._qsize())
            if not count:
                return []
            taken = [self._get() for _ in range(count)]
            self._release(taken)
            self.not_full.notify(count)
        return taken

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        item = super().get(block, timeout)
        with self.mutex:
            self._release([item])
        return item

    def _release(self, items: Sequence[T]) -> None:
        """Forget the cost of items leaving the queue (under the mutex)."""
        if self.costs:
            self.total_cost -= sum(self.costs.pop(id(item), 0) for item in items)

    def done(self, count: int) -> None:
        """``task_done`` for ``count`` items at once."""
        with self.all_tasks_done:
            unfinished = self.unfinished_tasks - count
            if unfinished < 0:
                raise ValueError("task_done() called too many times")
            self.unfinished_tasks = unfinished
            if not unfinished:
                self.all_tasks_done.notify_all()

    def unfinished(self) -> int:
        """Items put and not yet marked done (queued, or taken and not yet stored)."""
        with self.mutex:
            return self.unfinished_tasks

    def wait_until_empty(self, timeout: float,
                         still_waiting: Callable[[], bool] = lambda: True) -> int:
        """Wait until every item is done, at most ``timeout`` seconds; returns how many are not.

        ``still_waiting`` is asked every 0.1 s: when it says False (nobody is left to mark
        items done) the wait ends early.
        """
        deadline = time.monotonic() + timeout
        with self.all_tasks_done:
            while self.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not still_waiting():
                    break
                self.all_tasks_done.wait(min(remaining, 0.1))
            return self.unfinished_tasks

    def snapshot(self) -> list[T]:
        """The queued items at this moment (a copy: look at them without holding the lock)."""
        with self.mutex:
            return list(self.queue)

    def remove_where(self, predicate: Callable[[T], bool]) -> int:
        """Remove the queued items ``predicate`` holds for (marked done); returns how many."""
        with self.mutex:
            gone: list[T] = []
            kept: list[T] = []
            for item in self.queue:  # one call per item: predicates may record what they saw
                (gone if predicate(item) else kept).append(item)
            removed = len(gone)
            if removed:
                self._release(gone)
                self.queue.clear()
                self.queue.extend(kept)
                self.unfinished_tasks -= removed
                if not self.unfinished_tasks:
                    self.all_tasks_done.notify_all()
                self.not_full.notify(removed)
        return removed
