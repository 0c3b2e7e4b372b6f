"""Clusters: what sharing the limits through Redis costs a call, and how fast bans travel.

A private redis-server on 127.0.0.1 (Debian's, started here: tests/redis_support.py):

- **per call**: the limits step of an authenticated call in ``default`` with the shipped
  configuration's limits (``Cluster.count``: one EVALSHA of cluster.lua, the node's own
  tally kept up beside it), each call timed alone, in a fresh process (nothing left over
  from other benchmarks for the garbage collector to walk); median and 99th percentile
  over 20,000 calls from 1,000 accounts, after 2,000 calls of warm-up. Each call hangs up after
  it (untimed), as the event hook would release it. Beside it, the same calls through the
  node's tally alone (no cluster). Round trips are Redis's own count of EVALSHA requests.
- **ban propagation**: node ``b`` (tests/cluster_node.py, a process of its own, running the
  event hook as FreeSWITCH would) follows the ban stream; 8 threads here, node ``a``,
  publish 20,000 ban lines as the screen does after writing one; the clock runs until all
  of them are in b's ban log.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

from harness import FAKES, ROOT, Row, rate, scratch, use_fake_freeswitch

CALLS = 20_000
WARMUP = 2_000
ACCOUNTS = 1_000
LINES = 20_000
THREADS = 8

sys.path.insert(0, os.path.join(ROOT, "tests"))


def _shipped(url: str, node: str, log_dir: str) -> dict:
    with open(os.path.join(ROOT, "freeswitch_conf", "fs_guard.json")) as handle:
        document = json.load(handle)
    document["fail2ban"]["cluster"] = {"url": url, "node": node}
    document["fail2ban"]["filename"] = os.path.join(log_dir, "fs-guard-ban.log")
    return document


def per_call(url: str) -> Dict[str, float]:
    """The child process's part: µs per call, shared and alone, and round trips per call."""
    use_fake_freeswitch()
    import redis

    from fs_guard.runtime.cluster import Cluster
    from fs_guard.runtime.config import parse_config
    from fs_guard.runtime.limits import for_call
    from fs_guard.runtime.tally import Tally

    client = redis.Redis.from_url(url)
    config = parse_config(json.dumps(_shipped(url, "a", scratch())), "bench.json")
    cluster = Cluster(config.cluster)
    cluster.connect()
    limits = config.limits
    shared, alone = Tally(), Tally()
    calls = []
    for n in range(WARMUP + CALLS):
        account, number = f"u{n % ACCOUNTS}@pbx.example", ("0088216" if n % 7 == 0 else "44207946") + f"{n % 997:04d}"
        calls.append((for_call(limits, "default", number, "198.51.100.10", account), number, f"call-{n}"))
    timings = {"shared": [], "alone": []}
    before = 0
    for n, ((found, identities), number, call_id) in enumerate(calls):
        if n == WARMUP:
            before = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
        began = time.perf_counter_ns()
        cluster.count(shared, limits, found, identities, call_id, number, time.time())
        middle = time.perf_counter_ns()
        alone.count(limits, found, identities, call_id, number, time.time())
        ended = time.perf_counter_ns()
        cluster.release(call_id)
        shared.release(call_id)
        alone.release(call_id)
        if n >= WARMUP:
            timings["shared"].append((middle - began) / 1000)
            timings["alone"].append((ended - middle) / 1000)
    trips = (client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0) - before) / CALLS
    cluster.close()
    shared_us, alone_us = sorted(timings["shared"]), sorted(timings["alone"])
    return {"median": statistics.median(shared_us), "p99": shared_us[int(len(shared_us) * 0.99)],
            "alone_median": statistics.median(alone_us), "alone_p99": alone_us[int(len(alone_us) * 0.99)],
            "trips": trips}


def per_call_rows(url: str) -> List[Row]:
    child = subprocess.run([sys.executable, os.path.abspath(__file__), "--per-call", url], capture_output=True,
                           text=True, timeout=600)
    assert child.returncode == 0, child.stderr
    got = json.loads(child.stdout)
    return [
        Row("limits with Redis on loopback, per call, median (shipped limits)", got["median"], "µs/call", "", None,
            f"node alone: {got['alone_median']:.1f} µs/call"),
        Row(f"limits with Redis on loopback, per call, p99 ({got['trips']:g} round trip per call)", got["p99"],
            "µs/call", "≤ 300 µs, one round trip", got["p99"] <= 300 and got["trips"] == 1,
            f"node alone: {got['alone_p99']:.1f} µs/call"),
    ]


def propagation(url: str) -> Row:
    from fs_guard.runtime import banlog
    from fs_guard.runtime.cluster import Cluster
    from fs_guard.runtime.config import parse_config
    from fs_guard.runtime.offence import call_fields

    work = Path(scratch())
    conf, logs = work / "conf", work / "log"
    conf.mkdir()
    logs.mkdir()
    (conf / "fs_guard.json").write_text(json.dumps(_shipped(url, "b", str(logs))))
    node = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "cluster_node.py"), str(conf), str(logs)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join((FAKES, ROOT))})
    try:
        assert json.loads(node.stdout.readline()) == {"ready": True}
        publisher = Cluster(parse_config(json.dumps(_shipped(url, "a", str(work))), "a.json").cluster)
        publisher.connect()
        fields = call_fields("public", "0044123456", "friendly-scanner")
        per_thread = LINES // THREADS
        start = threading.Barrier(THREADS + 1)

        def publish(t: int) -> None:
            lines = [banlog.line(f"198.51.{100 + t}.{i % 250 + 1}", "deny_prefix", fields) for i in range(per_thread)]
            start.wait()
            for line in lines:
                publisher.publish(line)

        pool = [threading.Thread(target=publish, args=(t,)) for t in range(THREADS)]
        for thread in pool:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in pool:
            thread.join()
        log = logs / "fs-guard-ban.log"
        deadline = time.monotonic() + 120
        received = 0
        while time.monotonic() < deadline:
            publisher.flush()  # lines a thread left behind while another was sending
            received = log.read_bytes().count(b"\n") if log.exists() else 0
            if received >= per_thread * THREADS:
                break
            time.sleep(0.005)
        seconds = time.perf_counter() - began
        publisher.close()
        whole = received == per_thread * THREADS
        return Row("cluster ban propagation: lines reaching another node's ban log" +
                   ("" if whole else f" (ONLY {received} LINES)"), rate(received, seconds), "lines/s", "", None if whole
                   else False, f"{THREADS} publishing threads, 1 following node")
    finally:
        node.stdin.write(json.dumps({"op": "quit"}) + "\n")
        node.stdin.flush()
        node.wait(30)


def run() -> List[Row]:
    use_fake_freeswitch()
    from redis_support import RedisServer

    server_path = shutil.which("redis-server")
    try:
        import redis  # noqa: F401
    except ImportError:
        server_path = None
    if server_path is None:
        return [Row("cluster benchmarks NOT RUN: redis-server or redis-py missing (sh scripts/test.sh installs them)",
                    0, "", "", False)]
    server = RedisServer(server_path, Path(scratch()) / "redis").start()
    try:
        return per_call_rows(server.url) + [propagation(server.url)]
    finally:
        server.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--per-call"]:
        print(json.dumps(per_call(sys.argv[2])))
    else:
        from harness import table

        print(table(run()))
