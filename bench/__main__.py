"""``python -m bench``: run every benchmark module listed in BENCHMARKS, in order."""

from __future__ import annotations

import importlib
import sys

#: module names under bench/, each with a ``main(argv) -> None`` that prints its figures.
BENCHMARKS: list[str] = ["redos", "poison_batch", "exports", "xapi", "rls_query", "retention", "writer_throughput", "middleware_overhead", "http_ingestion", "jetstream", "bytes_per_event", "risk_oulad", "analytics_endpoints", "dashboard_paint"]


def main() -> None:
    selected = sys.argv[1:] or BENCHMARKS
    for name in selected:
        print(f"== bench.{name}", flush=True)
        importlib.import_module(f"bench.{name}").main([])


if __name__ == "__main__":
    main()
