"""Timing helpers shared by the benchmarks: medians of interleaved rounds.

Interleaving the variants being compared (round 1: A, B, C; round 2: A, B, C; ...)
spreads the machine's noise evenly over them, so ratios measured in one run are fair.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKES = os.path.join(ROOT, "tests", "fakes")


_SCRATCH: Optional[tempfile.TemporaryDirectory] = None


def run_child(script: str, *args: str) -> Dict[str, float]:
    """Run ``script --child ARGS`` in a fresh Python with the bytecode cache on (as in
    FreeSWITCH) and the fake ``freeswitch`` first on its path; what it prints is JSON."""
    import json
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join([ROOT, FAKES])
    out = subprocess.run([sys.executable, script, "--child", *args], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def scratch() -> str:
    """A fresh directory for one benchmark; all of them go when the process exits."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = tempfile.TemporaryDirectory(prefix="fs-guard-bench-")
    return tempfile.mkdtemp(dir=_SCRATCH.name)


def use_fake_freeswitch() -> None:
    """Make ``import freeswitch`` find the test fake, and fs_guard the source tree."""
    for path in (ROOT, FAKES):
        if path not in sys.path:
            sys.path.insert(0, path)


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    name: str
    value: float
    unit: str
    target: str = ""
    met: Optional[bool] = None
    naive: str = ""


def per_op_us(batch: Callable[[], int], rounds: int, prepare: Optional[Callable[[], None]] = None,
              clock: Callable[[], int] = time.perf_counter_ns) -> List[float]:
    """Run ``batch`` (which returns how many operations it did) ``rounds`` times; µs per op each round.

    ``prepare`` runs before each round, untimed (fresh sessions, an emptied fake log).
    ``clock``: wall time by default; ``time.process_time_ns`` counts only this process's CPU
    time, which a machine busy with other work inflates far less.
    """
    results = []
    for _ in range(rounds):
        if prepare is not None:
            prepare()
        start = clock()
        count = batch()
        results.append((clock() - start) / 1000.0 / count)
    return results


def interleaved(
    batches: Dict[str, Callable[[], int]], rounds: int, prepare: Optional[Callable[[str], None]] = None,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> Dict[str, float]:
    """Median µs per op of each batch, the batches alternating round by round."""
    samples: Dict[str, List[float]] = {name: [] for name in batches}
    for _ in range(rounds):
        for name, batch in batches.items():
            samples[name].extend(per_op_us(batch, 1, (lambda: prepare(name)) if prepare else None, clock))
    return {name: statistics.median(values) for name, values in samples.items()}


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def fmt(value: float) -> str:
    if value >= 10_000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(rows: Iterable[Row]) -> str:
    lines = ["| benchmark | result | target | met | naive implementation |", "|---|---|---|---|---|"]
    for row in rows:
        met = "" if row.met is None else ("yes" if row.met else "NO")
        lines.append(f"| {row.name} | {fmt(row.value)} {row.unit} | {row.target} | {met} | {row.naive} |")
    return "\n".join(lines)


def machine() -> str:
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def chunks(items: Sequence, size: int) -> List[Sequence]:
    return [items[i:i + size] for i in range(0, len(items), size)]
