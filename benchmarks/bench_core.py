"""Config hot-reload check, ban-log throughput from 8 threads, first import of fs_guard."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import List

from harness import FAKES, ROOT, Row, interleaved, rate, scratch, use_fake_freeswitch

use_fake_freeswitch()  # fs_guard logs to the fake console, as inside FreeSWITCH

from naive import naive_append, naive_load  # noqa: E402

from fs_guard.runtime import banlog  # noqa: E402
from fs_guard.runtime.banlog import BanLog  # noqa: E402
from fs_guard.runtime.config import ConfigStore  # noqa: E402
from fs_guard.runtime.offence import call_fields  # noqa: E402

SHIPPED = os.path.join(ROOT, "freeswitch_conf", "fs_guard.json")


def config_check(rounds: int = 30) -> Row:
    work = scratch()
    path = os.path.join(work, "fs_guard.json")
    with open(SHIPPED if os.path.exists(SHIPPED) else os.devnull) as source, open(path, "w") as target:
        target.write(source.read() or '{"fail2ban": {}}')
    store = ConfigStore(path)
    store.current()

    def cached() -> int:
        for _ in range(1000):
            store.current()
        return 1000

    def naive() -> int:
        for _ in range(20):
            naive_load(path)
        return 20

    us = interleaved({"cached": cached, "naive": naive}, rounds)
    return Row("config check per call, file unchanged", us["cached"], "µs/call", "one stat, no parse", None,
               f"re-read + validate per call: {us['naive']:.0f} µs/call")


def _threads(write, lines_per_thread: int, threads: int = 8) -> float:
    start = threading.Barrier(threads + 1)

    def work(n: int) -> None:
        line = banlog.line(f"198.51.100.{n}", "deny_prefix", call_fields("public", "0044123456", "friendly-scanner"))
        start.wait()
        for _ in range(lines_per_thread):
            write(line)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    return time.perf_counter() - began


def ban_log_throughput(lines_per_thread: int = 25_000) -> Row:
    work = scratch()
    path, naive_path = os.path.join(work, "ban.log"), os.path.join(work, "naive.log")
    writer = BanLog()
    seconds = _threads(lambda line: writer.write(path, line), lines_per_thread)
    naive_seconds = _threads(lambda line: naive_append(naive_path, line), lines_per_thread // 5)
    with open(path) as handle:
        lines = handle.read().splitlines()
    whole = len(lines) == 8 * lines_per_thread and all(line.endswith('ua="friendly-scanner"') for line in lines)
    value = rate(8 * lines_per_thread, seconds)
    naive = rate(8 * lines_per_thread // 5, naive_seconds)
    return Row("ban log, 8 threads" + ("" if whole else " (LINES LOST OR TORN)"), value, "lines/s",
               "≥ 50,000 lines/s", whole and value >= 50_000, f"open+append+close per line: {naive:,.0f} lines/s")


def first_import(rounds: int = 7) -> Row:
    """What the first call after FreeSWITCH starts pays: import, config parse (jsonschema), one call."""
    work = scratch()
    with open(SHIPPED if os.path.exists(SHIPPED) else os.devnull) as source, \
            open(os.path.join(work, "fs_guard.json"), "w") as target:
        target.write(source.read() or '{"fail2ban": {}}')
    probe = (
        "import time, importlib; t = time.perf_counter();"
        "import freeswitch, fsctl; fsctl.reset({'conf_dir': %r, 'log_dir': %r});"
        "t = time.perf_counter();"
        "import fs_guard.screen as s; s = importlib.reload(s);"
        "s.handler(fsctl.call_session(destination_number='1001', context='public'), '');"
        "print(time.perf_counter() - t)"
    ) % (work, work)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join([ROOT, FAKES])
    samples = sorted(
        float(subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                             check=True).stdout)
        for _ in range(rounds)
    )
    return Row("first call after start: import fs_guard + load config + one call", samples[len(samples) // 2] * 1000,
               "ms", "paid once", None, "")


def run() -> List[Row]:
    return [config_check(), ban_log_throughput(), first_import()]


if __name__ == "__main__":
    from harness import table

    print(table(run()))
