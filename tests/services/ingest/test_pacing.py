"""The writer's GIL pacing: short slices when nobody competes, few longer ones when a host
thread is busy, and no rest while behind. The clock is faked for the decisions; one test
uses a real busy thread to show how contention is recognised."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from backend.config import Settings
from backend.services.ingest import items as items_of
from backend.services.ingest import pacing
from backend.services.ingest.pacing import Contention, Pacer
from backend.services.ingest.prepare import BatchPreparer
from backend.services.ingest.privacy_step import PrivacyStep


class FakeClock:
    """``perf_counter`` and ``sleep`` for the pacing module; an offer of the GIL
    (``sleep(0)``) takes ``offer_takes`` seconds, a rest takes what it asks for plus that."""

    def __init__(self) -> None:
        self.now = 100.0
        self.offer_takes = 0.00008
        self.sleeps: list[float] = []

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + self.offer_takes

    def work(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(pacing.time, "perf_counter", fake.perf_counter)
    monkeypatch.setattr(pacing.time, "sleep", fake.sleep)
    return fake


ITEM = 0.00003  # 30 µs of work per item: a slice of 0.2 ms is 7 items, of 2 ms 67


def run(pacer: Pacer, clock: FakeClock, items: int) -> None:
    for _ in range(items):
        clock.work(ITEM)
        pacer()


def test_uncontended_the_gil_is_offered_every_slice(clock: FakeClock) -> None:
    pacer = Pacer(Contention())
    run(pacer, clock, 70)
    assert clock.sleeps == [0] * 10  # sleep(0) once per 0.2 ms slice
    assert not pacer.contention.contended


def test_a_slow_offer_means_a_busy_thread_then_longer_slices_and_rests(clock: FakeClock) -> None:
    contention = Contention()
    pacer = Pacer(contention)
    clock.offer_takes = 0.005  # a busy host thread held the GIL for the switch interval
    run(pacer, clock, 7)
    assert clock.sleeps == [0] and contention.contended
    # then: a 2 ms slice of work before each offer, and each offer is a rest
    clock.sleeps.clear()
    run(pacer, clock, 670)
    assert clock.sleeps == [pacing.CONTENDED_REST] * 10


def test_contention_ends_when_an_offer_comes_back_at_once(clock: FakeClock) -> None:
    contention = Contention()
    contention.contended = True
    pacer = Pacer(contention)
    run(pacer, clock, 67)  # one contended slice: one rest
    assert clock.sleeps == [pacing.CONTENDED_REST]
    assert not contention.contended  # the rest came back on time: nobody was busy
    clock.sleeps.clear()
    run(pacer, clock, 7)
    assert clock.sleeps == [0]  # back to short slices


@pytest.mark.parametrize("options", [{"backlog": True}, {"rests": False}],
                         ids=["behind", "in a transaction"])
def test_behind_or_in_a_transaction_the_writer_never_rests(
        clock: FakeClock, options: dict[str, bool]) -> None:
    contention = Contention()
    contention.contended = True
    clock.offer_takes = 0.005
    pacer = Pacer(contention, **options)
    run(pacer, clock, 670)
    assert clock.sleeps == [0] * 10 and contention.contended  # offers only, per 2 ms slice


def test_a_real_busy_thread_is_recognised() -> None:
    """A thread spinning in Python keeps the GIL for the switch interval once it has it."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    contention = Contention()
    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        pacer = Pacer(contention)
        deadline = time.perf_counter() + 0.5
        while not contention.contended and time.perf_counter() < deadline:
            pacer()
    finally:
        stop.set()
        spinner.join()
    assert contention.contended


class SteadyClock(FakeClock):
    """Time moves on by ``ITEM`` each time it is read: the preparing step's own work."""

    def perf_counter(self) -> float:
        self.now += ITEM
        return self.now


@pytest.mark.parametrize("waited", [False, True], ids=["fire-and-forget", "a request waits"])
def test_a_batch_a_request_waits_for_is_prepared_without_rests(
        monkeypatch: pytest.MonkeyPatch, waited: bool) -> None:
    """Contended, the preparing step rests between slices — unless a request waits for the
    batch's commit (durable acknowledgement): that request is the host's own."""
    clock = SteadyClock()
    monkeypatch.setattr(pacing.time, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(pacing.time, "sleep", clock.sleep)
    settings = Settings(batch_size=500)
    contention = Contention()
    contention.contended = True
    preparer = BatchPreparer(settings, PrivacyStep(settings, lambda token: (None, 0.0)), None,
                             contention)
    now = datetime.now(UTC)
    items = [{"kind": "event", "row": items_of.event_row("page_view", now, page_path=f"/p{i}"),
              "received_at": now, "client": None, "user_id": None} for i in range(400)]
    prepared = preparer.prepare(_no_connection, items, waited=waited)
    assert len(prepared.batch.events) == 400
    rests = [s for s in clock.sleeps if s]
    assert clock.sleeps  # the GIL was offered either way
    if waited:
        assert rests == []
    else:
        assert rests and set(rests) == {pacing.CONTENDED_REST}


def _no_connection() -> Any:
    raise AssertionError("a batch of anonymous server events needs no database to prepare")
