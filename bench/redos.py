"""``python -m bench.redos``: what the hostile error report costs the writer, against a normal one.

Error grouping normalises client text (message, stack, API path) with regular expressions
inside the writer. A pattern that backtracks lets one anonymous client stall ingestion for
everyone. This benchmark times ``fingerprint`` (all of grouping's client-text work) on a
realistic report at the maximum field lengths, then on reports whose message, stack or
path is one short pattern repeated to the maximum length — every pattern of three
characters over an alphabet of the characters the expressions care about, and messages
of every 4-character pattern over a smaller one — and prints the worst ones as a multiple
of the normal report. ``--before REV`` times the ``error_groups`` module of an older
revision (read with ``git show``) in the same run and prints the two in columns side by
side.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from backend.services.ingest import error_groups

MODULE_PATH = "backend/services/ingest/error_groups.py"
ALPHABET = "a0-.:/ '\"`x@\n\tG9f?#)"
#: the red-team finding's message: word starts that each scanned the rest for "://"
FINDING = ("a-" * 1000)[:2000]
LIMITS = {"message": 2000, "stack": 8000, "api_endpoint": 2000}  # the validation's bounds
#: messages of 4-character patterns over the characters that start the most costly parts
#: (numbers, hex, quotes, URLs, whitespace): a digit and a letter between spaces ("0 a ")
#: costs more than any 3-character pattern
ALPHABET_4 = "09 \n'`-a.:/x"
ROUNDS = 5  # of timing the leaders again, ROUND_PAUSE seconds apart
ROUND_PAUSE = 0.5
MAX_BATCHES = 40  # of leaders timed again; the output bounds the cost of the others

NORMAL: dict[str, Any] = {
    "error_type": "api_error", "http_method": "GET", "status_code": 500,
    "message": ("TypeError: Cannot read properties of undefined (reading 'id') at "
                "https://app.example/q/12?x=1 user 6f1c2c7e-7f57-4b7a-9d0b-1f6d2a3c4b5e "
                * 20)[:2000],
    "stack": ("    at QuestCard (https://app.example/static/js/main.3f2a1b9c.js:2:12345)\n"
              * 120)[:8000],
    "api_endpoint": ("/api/quests/123/start?x=1" * 80)[:2000],
}


def cost(fingerprint: Callable[[dict[str, Any]], str], row: dict[str, Any],
         repeats: int) -> float:
    """The fastest of ``repeats`` calls, in seconds (the least disturbed by the machine)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fingerprint(row)
        best = min(best, time.perf_counter() - started)
    return best


def hostile_rows() -> list[tuple[str, str, dict[str, Any]]]:
    rows = [("message", "finding: 'a-' × 1000", {**NORMAL, "message": FINDING})]
    for combo in itertools.product(ALPHABET, repeat=3):
        pattern = "".join(combo)
        for field, limit in LIMITS.items():
            rows.append((field, repr(pattern), {**NORMAL, field: (pattern * limit)[:limit]}))
    for combo in itertools.product(ALPHABET_4, repeat=4):
        pattern = "".join(combo)
        rows.append(("message", repr(pattern), {**NORMAL, "message": (pattern * 500)[:2000]}))
    return rows


def module_at(rev: str) -> ModuleType:
    """``error_groups`` as it was at ``rev``, imported under another name."""
    source = subprocess.run(["git", "show", f"{rev}:{MODULE_PATH}"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "error_groups_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("error_groups_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Figures:
    """What one version of ``fingerprint`` costs: the normal report, the finding, the worst."""

    label: str
    normal: float
    finding: float
    worst: list[tuple[float, str, str]]  # (seconds, field, pattern), the most costly first
    reports: int
    confirmed: int  # reports timed again in rounds
    rest: float  # the slowest screening of a report not timed again: a bound on its cost


def measure(label: str, fingerprint: Callable[[dict[str, Any]], str], repeats: int,
            top: int, rounds: int = ROUNDS) -> Figures:
    """Screen every hostile report, then time the leaders again, each next to the normal one.

    This machine slows down for seconds at a time; a report timed only while that lasted
    keeps the slow time however often it is called in a row (one run showed 0.33 ms for a
    report that costs 0.17 ms in every quiet second). So each leader is timed right after
    the normal report, in ``rounds`` rounds a pause apart, and its ratio is the median of
    the rounds' ratios (a slow spell slows both sides of a pair). Leaders are taken from
    the screening in batches until no report left was screened slower than the ``top``-th
    (or MAX_BATCHES were): a screening is the fastest of a few calls, an upper bound on a
    report's cost, so the slowest one left bounds every other report.
    """
    rows = {(field, name): row for field, name, row in hostile_rows()}
    screened = sorted(((cost(fingerprint, row, repeats), field, name)
                       for (field, name), row in rows.items()), reverse=True)
    finding = next((field, name) for _, field, name in screened if name.startswith("finding"))
    normal = cost(fingerprint, NORMAL, repeats * 20)
    ratios: dict[tuple[str, str], float] = {}
    batch = [finding] + [(field, name) for _, field, name in screened[:top * 4]]
    for _ in range(MAX_BATCHES):
        paired: dict[tuple[str, str], list[float]] = {key: [] for key in batch}
        for _ in range(rounds):
            time.sleep(ROUND_PAUSE)
            for key in batch:
                before = cost(fingerprint, NORMAL, repeats * 10)
                normal = min(normal, before)
                paired[key].append(cost(fingerprint, rows[key], repeats * 10) / before)
        ratios.update((key, statistics.median(values)) for key, values in paired.items())
        bar = sorted(ratios.values(), reverse=True)[min(top, len(ratios)) - 1] * normal
        batch = [(field, name) for seconds, field, name in screened
                 if seconds > bar and (field, name) not in ratios][:top * 4]
        if not batch:
            break
    timed = sorted(((ratio * normal, field, name) for (field, name), ratio in ratios.items()),
                   reverse=True)
    rest = max((seconds for seconds, field, name in screened if (field, name) not in ratios),
               default=0.0)
    return Figures(label, normal, ratios[finding] * normal, timed[:top], len(rows), len(ratios),
                   rest)


def print_side_by_side(results: list[Figures]) -> None:
    """One column per version, so before and after read across a line."""
    width = 34
    print(" " * 22 + "".join(f"{r.label:>{width}s}" for r in results))

    def line(name: str, cells: list[str]) -> None:
        print(f"{name:22s}" + "".join(f"{cell:>{width}s}" for cell in cells))

    line("normal report", [f"{r.normal * 1e3:.3f} ms" for r in results])
    line("finding ('a-' × 1000)", [f"{r.finding * 1e3:.3f} ms {r.finding / r.normal:5.1f}×"
                                   for r in results])
    for rank in range(max(len(r.worst) for r in results)):
        cells = []
        for r in results:
            seconds, field, name = r.worst[rank]
            cells.append(f"{field} {name} {seconds * 1e3:.3f} ms {seconds / r.normal:5.1f}×")
        line(f"worst #{rank + 1}" + (f" of {results[0].reports}" if rank == 0 else ""), cells)
    line("timed again in rounds", [f"{r.confirmed} reports" for r in results])
    # a screening is the fastest of a few calls, so it bounds a report's cost from above
    line("every other report", [f"≤ {r.rest * 1e3:.3f} ms {r.rest / r.normal:5.1f}×"
                                for r in results])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.redos", description=__doc__)
    parser.add_argument("--before", metavar="REV", help="also time error_groups at REV")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args(argv)
    results = []
    if args.before:
        results.append(measure(f"before ({args.before})", module_at(args.before).fingerprint,
                               args.repeats, args.top))
    results.append(measure("this code", error_groups.fingerprint, args.repeats, args.top))
    print_side_by_side(results)


if __name__ == "__main__":
    main(sys.argv[1:])
