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
    """A FIFO of at most ``maxsize`` items with all-or-nothing puts and batch takes."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize=maxsize)

    def put_all(self, items: Sequence[T]) -> bool:
        """Queue every item, or none (False) when they do not all fit; never waits.

        All-or-nothing under one lock, so a client told 503 resends the whole batch and one
        told 202 can forget it: no batch is ever half accepted.
        """
        with self.not_full:
            if self.maxsize > 0 and self.maxsize - self._qsize() < len(items):
                return False
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
            self.not_full.notify(count)
        return taken

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

    def remove_where(self, predicate: Callable[[T], bool]) -> int:
        """Remove the queued items ``predicate`` holds for (marked done); returns how many."""
        with self.mutex:
            kept = [item for item in self.queue if not predicate(item)]
            removed = len(self.queue) - len(kept)
            if removed:
                self.queue.clear()
                self.queue.extend(kept)
                self.unfinished_tasks -= removed
                if not self.unfinished_tasks:
                    self.all_tasks_done.notify_all()
                self.not_full.notify(removed)
        return removed
