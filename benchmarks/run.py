"""Run every fs-guard benchmark and print one table (Markdown, as in the README).

    .venv/bin/python benchmarks/run.py

Each target comes from the product brief; "naive implementation" is the same job done
the obvious way (benchmarks/naive.py), measured in the same run.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import machine, table, use_fake_freeswitch  # noqa: E402

use_fake_freeswitch()

import bench_cluster  # noqa: E402
import bench_core  # noqa: E402
import bench_destinations  # noqa: E402
import bench_events  # noqa: E402
import bench_limits  # noqa: E402
import bench_replay  # noqa: E402
import bench_rules  # noqa: E402
import bench_screen  # noqa: E402


def main() -> int:
    rows = []
    for module in (bench_rules, bench_screen, bench_destinations, bench_limits, bench_cluster, bench_core, bench_events,
                   bench_replay):
        print(f"running {module.__name__} ...", file=sys.stderr, flush=True)
        rows.extend(module.run())
    print(f"Machine: {machine()}\n")
    print(table(rows))
    missed = [row.name for row in rows if row.met is False]
    if missed:
        print("\nTargets not met: " + "; ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
