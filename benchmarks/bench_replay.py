#!/usr/bin/env python3
"""Benchmark: ``fs-guard replay`` lines per second, per input format (target: at least
200,000) and with the fraud limits (target: at least 150,000).

Generates the bundled trace's kind of traffic at a larger scale (scripts/make_attack_trace.py,
fixed seed: at scale 130, 130 offices of ten accounts with their trunks, and each attack
130 times) as JSON Lines, CSV, gzipped JSON Lines, a FreeSWITCH log (where most lines are
not about calls, as in a real one) and a CDR CSV, then replays each with the command's own
code (``fs_guard.offline.cli.replay.replay_files``) on the built-in defaults (no limits)
and the shipped jail; then the JSON Lines again on the shipped configuration
(``freeswitch_conf/fs_guard.json``: its five example limits) and on the bundled demo
configuration (the same limits; ``default`` lets international calls through, so more
calls reach them). Reports the best of a few rounds.

    python3 benchmarks/bench_replay.py             # table
    python3 benchmarks/bench_replay.py --check     # exit 1 when a row misses its target
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from fs_guard.fsconf import bundle  # noqa: E402
from fs_guard.offline.cli.replay import DEMO_CONFIG, replay_files  # noqa: E402
from fs_guard.runtime.config import Config, default_config, parse_config  # noqa: E402
from fs_guard.offline.replay import shipped_jail  # noqa: E402

TARGET = 200_000  # lines per second
LIMITS_TARGET = 150_000  # lines per second, with the shipped limits
FILES = {"jsonl": "trace.jsonl", "csv": "trace.csv", "jsonl.gz": "trace.jsonl.gz", "fslog": "freeswitch.log",
         "cdr": "Master.csv"}


def _generator():
    spec = importlib.util.spec_from_file_location("make_attack_trace", os.path.join(ROOT, "scripts", "make_attack_trace.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def make_inputs(directory: str, scale: int) -> Dict[str, str]:
    """The same attempts in each format; returns format -> path."""
    maker = _generator()
    events = maker.generate(maker.SEED, scale)
    paths = {}
    for name, filename in FILES.items():
        path = os.path.join(directory, filename)
        maker.write(path, maker.WRITERS[name.split(".")[0]](events))
        paths[name] = path
    return paths


def limited_configs() -> Dict[str, Config]:
    """The configurations with the shipped limits: the shipped one, and the demo's."""
    shipped = bundle.path(bundle.FREESWITCH, "fs_guard.json")
    with open(shipped, "rb") as a, open(DEMO_CONFIG, "rb") as b:
        return {"shipped limits": parse_config(a.read(), shipped), "demo configuration": parse_config(b.read(), DEMO_CONFIG)}


def measure(path: str, rounds: int, ban_log: Optional[str] = None, config: Optional[Config] = None) -> Dict[str, float]:
    """Best of ``rounds`` full replays of ``path``: lines, attempts, seconds, lines/s."""
    config, jail = config or default_config(), shipped_jail()
    best = None
    for _ in range(rounds):
        start = time.perf_counter()
        report = replay_files([path], None, config, jail, ban_log)
        seconds = time.perf_counter() - start
        best = seconds if best is None else min(best, seconds)
    lines = report.files[0].lines
    screened = report.limits.screened if report.limits is not None else 0
    return {"lines": lines, "attempts": report.events, "screened": screened, "seconds": best, "rate": lines / best}


def run(scale: int = 130, rounds: int = 3) -> list:
    """Rows for benchmarks/run.py's table."""
    from harness import Row

    with tempfile.TemporaryDirectory(prefix="fs-guard-bench-") as directory:
        paths = make_inputs(directory, scale)
        measured = [(name, measure(path, rounds)) for name, path in paths.items()]
        with_log = measure(paths["jsonl"], rounds, os.path.join(directory, "ban.log"))
        limited = [(name, measure(paths["jsonl"], rounds, config=config)) for name, config in limited_configs().items()]
    rows = [Row(f"replay, {name} ({row['attempts']:,} attempts)", row["rate"], "lines/s", f"≥ {TARGET:,} lines/s",
                row["rate"] >= TARGET) for name, row in measured]
    rows.append(Row("replay, jsonl writing --ban-log (optional output)", with_log["rate"], "lines/s",
                    f"≥ {TARGET:,} lines/s", with_log["rate"] >= TARGET))
    rows += [Row(f"replay with limits, jsonl, {name} ({row['screened']:,} calls screened)", row["rate"], "lines/s",
                 f"≥ {LIMITS_TARGET:,} lines/s", row["rate"] >= LIMITS_TARGET) for name, row in limited]
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=130, help="traffic multiplier (130: about 500,000 attempts)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="exit 1 if a row is under its target")
    args = parser.parse_args(argv)
    missed = []
    with tempfile.TemporaryDirectory(prefix="fs-guard-bench-") as directory:
        paths = make_inputs(directory, args.scale)
        rows = [(name, TARGET, measure(path, args.rounds)) for name, path in paths.items()]
        rows.append(("jsonl --ban-log", TARGET, measure(paths["jsonl"], args.rounds, os.path.join(directory, "ban.log"))))
        rows += [(f"jsonl, {name}", LIMITS_TARGET, measure(paths["jsonl"], args.rounds, config=config))
                 for name, config in limited_configs().items()]
    print(f"fs-guard replay, best of {args.rounds} (target {TARGET:,} lines/s on the built-in defaults, "
          f"{LIMITS_TARGET:,} with the shipped limits)")
    print(f"  {'input':<30} {'lines':>10} {'attempts':>10} {'screened':>9} {'seconds':>8} {'lines/s':>10}")
    for name, target, row in rows:
        optional = "--" in name  # an optional output, not part of the target
        met = row["rate"] >= target
        if not met and not optional:
            missed.append(name)
        verdict = "(optional output)" if optional else "ok" if met else "UNDER TARGET"
        print(f"  {name:<30} {row['lines']:>10,} {row['attempts']:>10,} {row['screened']:>9,} {row['seconds']:>8.2f} "
              f"{row['rate']:>10,.0f}  {verdict}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
