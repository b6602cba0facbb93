"""Reading a request body within a deadline, so a slow upload cannot keep a thread.

A client that sends its body one byte a second keeps the gunicorn thread that reads it
blocked in ``recv`` for as long as it likes; a handful of them take every thread of a
worker, and ``/health`` waits behind them (issue #19, item 9). A read cannot be given a
timeout from inside the application (gunicorn's socket is blocking and its body reader
loops until it has what was asked), so a watchdog thread shuts the socket's reading side
when the deadline passes: the blocked ``recv`` returns end-of-file at once, the request is
answered 408, and gunicorn, finding the body incomplete, closes the connection instead of
keeping it alive. One watchdog per process serves every request; arming and disarming it
is a dictionary insert and pop under a lock, so a body that arrives at once costs nothing
measurable. The watchdog belongs to the app's Waymark state (``WaymarkState.body_watchdog``),
not to this module.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("waymark")

#: how often the watchdog looks at the armed deadlines: a late body is cut within this
#: much of its deadline (a request that finishes meanwhile disarms its own entry)
CHECK_INTERVAL = 0.25


class BodyTimeout(Exception):
    """The body did not arrive within the deadline; the caller answers 408."""


@dataclass
class _Armed:
    deadline: float
    sock: socket.socket | None
    expired: bool = False


class BodyWatchdog:
    """Shuts the reading side of sockets whose body read outlives its deadline.

    The thread starts with the first armed read and again in a forked child (gunicorn
    builds the app in each worker, but a host may fork after a first request), and ends
    with :meth:`close` (the app's Waymark closing). It waits on an event, not
    ``time.sleep``: it neither outlives its app nor spins when something patches the
    ``time`` module."""

    def __init__(self, interval: float = CHECK_INTERVAL) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._armed: dict[int, _Armed] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closed = threading.Event()

    def arm(self, sock: socket.socket | None, seconds: float) -> int:
        """Watch one body read; returns the key to :meth:`disarm` it with."""
        entry = _Armed(time.monotonic() + seconds, sock)
        with self._lock:
            key = next(self._ids)
            self._armed[key] = entry
            self._ensure_thread()
        return key

    def disarm(self, key: int) -> bool:
        """Stop watching; True if the deadline had passed (the socket was shut, or should
        have been: the read is then refused even if it finished)."""
        with self._lock:
            entry = self._armed.pop(key, None)
        if entry is None:
            return False
        return entry.expired or time.monotonic() > entry.deadline

    def close(self) -> None:
        """Stop the thread (a read armed afterwards is still refused when it ends late)."""
        self._closed.set()

    def _ensure_thread(self) -> None:
        if self._closed.is_set():
            return
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="waymark-body-watchdog",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed.wait(self._interval):
            self.expire(time.monotonic())

    def expire(self, now: float) -> int:
        """Shut the sockets of the reads armed before ``now`` minus their time; how many.

        Under the lock, so that a request which disarms afterwards finds its socket already
        shut, never a socket shut later under the connection's next request."""
        with self._lock:
            late = [entry for entry in self._armed.values()
                    if not entry.expired and entry.deadline <= now]
            for entry in late:
                entry.expired = True
                _shut_reading(entry.sock)
        return len(late)


def _shut_reading(sock: socket.socket | None) -> None:
    """End a blocked ``recv`` on ``sock`` (it returns end-of-file); writing stays open for
    the 408."""
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:  # already closed by the client or the server: nothing is blocked
        log.debug("waymark: the socket of a late body was already closed")


def read_within(read: Callable[[], bytes], seconds: float, environ: dict[str, Any],
                watchdog: BodyWatchdog) -> bytes:
    """What ``read()`` returns (the body, or its bounded head), within ``seconds``;
    BodyTimeout past it.

    ``read`` is the caller's: Flask's ``request.get_data`` when the length is known (it also
    returns a body a host app's hook already read and cached), a bounded ``stream.read``
    for a chunked one. Under gunicorn the socket is ``environ["gunicorn.socket"]``; under
    another server there is none to shut, and a read that ends past the deadline is refused
    all the same.
    """
    key = watchdog.arm(environ.get("gunicorn.socket"), seconds)
    try:
        data = read()
    except Exception:
        if watchdog.disarm(key):  # the shut socket made the reader fail: say why
            raise BodyTimeout from None
        raise
    if watchdog.disarm(key):
        raise BodyTimeout
    return data
