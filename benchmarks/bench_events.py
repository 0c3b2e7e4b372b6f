"""Register-failure hook: events drained into the ban log per second.

The consumer is filled first (20,000 sofia::register_failure events, as a password
guesser produces them), then the real ``fs_guard.events`` runtime is started on it
the way mod_python3 starts a startup script; the clock runs until the queue is empty
and every line is in the ban log.
"""

from __future__ import annotations

import os
import time
from typing import List

from harness import Row, rate, scratch, use_fake_freeswitch

EVENTS = 20_000


def run(events: int = EVENTS) -> List[Row]:
    use_fake_freeswitch()
    import freeswitch
    import fsctl
    from modpython import run_startup, unload

    from fs_guard.runtime import host, sofia_events, state
    from fs_guard.runtime.banlog import BanLog
    from fs_guard.runtime.config import ConfigStore

    work = scratch()
    fsctl.reset({"conf_dir": work, "log_dir": work})
    state.CONFIG, state.BANLOG = ConfigStore(), BanLog()
    consumer = freeswitch.EventConsumer("CUSTOM", sofia_events.REGISTER_FAILURE_EVENT, events + 1)
    consumer.bind("CUSTOM", sofia_events.PRE_REGISTER_EVENT)
    for i in range(events):
        fsctl.fire(sofia_events.REGISTER_FAILURE_EVENT, {
            "profile-name": "internal", "to-user": "1000", "to-host": "pbx.example.com",
            "network-ip": f"198.51.{100 + (i >> 8) % 2}.{i & 255}", "network-port": "5060",
            "user-agent": "friendly-scanner", "registration-type": "REGISTER",
        })
    original = host.event_consumer
    host.event_consumer = lambda *args: consumer
    try:
        began = time.perf_counter()
        run_startup("fs_guard.events")
        fsctl.wait_until(lambda: fsctl.queued() == 0 and fsctl.idle(), timeout=120)
        seconds = time.perf_counter() - began
    finally:
        unload()
        host.event_consumer = original
    with open(os.path.join(work, "fs-guard-ban.log")) as handle:
        lines = sum(1 for _ in handle)
    value = rate(events, seconds)
    whole = lines == events
    return [Row("event hook, register failures drained" + ("" if whole else f" (ONLY {lines} LINES)"),
                value, "events/s", "≥ 20,000 events/s", whole and value >= 20_000)]


if __name__ == "__main__":
    from harness import table

    print(table(run()))
