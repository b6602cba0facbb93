"""How the writer's threads share the GIL with the host's threads.

The writer runs Python (the privacy step, the COPY encoding) in the host's process, so every
moment it holds the GIL some host thread may be waiting for it. A host thread that never
releases the GIL (CPU-bound request handling) keeps it until a waiting thread has waited the
switch interval (5 ms; Waymark never changes it): the writer then gets the GIL about once per
5 ms, and whatever it does before offering it back is what the request then running waits.

Two regimes, told apart by how long an offer of the GIL took:

* **uncontended** (the offer came back at once: nobody else wanted the GIL, or only for a
  moment, like the writer's own database thread): offer it every ``SLICE`` of work, so a
  request that starts meanwhile waits at most that long;
* **contended** (the offer took more than ``CONTENDED_AFTER``: a busy thread ran meanwhile):
  work in fewer, longer slices (``CONTENDED_SLICE``) and then rest (``CONTENDED_REST``,
  the GIL released, not even asked for). The writer needs the same GIL time either way; in
  many short slices it is taken from many requests (at ~10,000 requests/s a 0.5 ms slice
  every 5 ms touches 2 % of them: that *is* the p99), in few longer ones from few: p99
  falls, p99.9 rises to about the longer slice (bench/README.md, middleware overhead).

Under a deep backlog (the host is so busy that the writer falls behind) the writer does not
rest: storing what was accepted comes first, within the same slices. Nor does it rest inside
an open transaction (which holds the forget contract's shared lock), nor while a request
waits for the batch's commit (durable acknowledgement): resting would protect the host's
requests from the writer by making one of them wait — at 16 clients the waits of durable
requests averaged 15 ms with the rests, 10 ms without (bench/README.md, "Durable
acknowledgement").
"""

from __future__ import annotations

import time

#: the longest the writer holds the GIL between two offers of it when nobody competes
SLICE = 0.0002
#: the same under a deep backlog (a batch of DEEP_BACKLOG × batch_size or more)
SLICE_BACKLOG = 0.0005
#: an offer of the GIL that took longer than this means a busy thread ran meanwhile
#: (uncontended it takes the timer slack of ``sleep(0)``, ~0.05–0.1 ms on Linux)
CONTENDED_AFTER = 0.001
#: contended: the writer's slices, and the rest after each (GIL released)
CONTENDED_SLICE = 0.002
CONTENDED_REST = 0.01


def offer_gil() -> None:
    """Let a thread waiting for the GIL run now (the database thread, a request).

    The preparing thread is CPU-bound; without this, a thread that wakes up (the database
    thread when the server answered) waits up to the switch interval (5 ms) for the GIL,
    and the server sits idle meanwhile: measured here, the writer took 10–35 % longer.
    ``sleep(0)`` releases the GIL and hands it to a waiting thread.
    """
    time.sleep(0)


class Contention:
    """Whether the writer's last offer of the GIL found a busy thread (shared by its threads)."""

    __slots__ = ("contended",)

    def __init__(self) -> None:
        self.contended = False


class Pacer:
    """Offers the GIL once a slice of work is done; called between items of a batch.

    ``backlog``: the writer is behind; it then works in longer slices and never rests.
    ``rests=False``: never rest either (the caller holds a transaction open).
    """

    __slots__ = ("backlog", "contention", "rests", "until")

    def __init__(self, contention: Contention, backlog: bool = False, rests: bool = True) -> None:
        self.contention = contention
        self.backlog = backlog
        self.rests = rests and not backlog
        self.until = time.perf_counter() + self._slice()

    def _slice(self) -> float:
        if self.contention.contended:
            return CONTENDED_SLICE
        return SLICE_BACKLOG if self.backlog else SLICE

    def __call__(self) -> None:
        started = time.perf_counter()
        if started < self.until:
            return
        rest = CONTENDED_REST if self.contention.contended and self.rests else 0.0
        if rest:
            time.sleep(rest)
        else:
            offer_gil()
        ended = time.perf_counter()
        self.contention.contended = ended - started - rest > CONTENDED_AFTER
        self.until = ended + self._slice()
