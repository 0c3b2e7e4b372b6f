"""What the fraud limits add to a screened call, with 100,000 keys tracked.

Two measurements, in a child process with the fake ``freeswitch`` module:

- **per call**: fs-guard's handler alone, once with the shipped limits and once with the
  same configuration without them; the difference is what the limits cost. Two kinds of
  call: authenticated calls to extension 1001 in ``default`` (six limits apply: two count
  the call, one of them concurrent calls) and unauthenticated calls in
  ``public`` from ever new addresses (``ip-call-rate``: a new key each call, so the
  least recently seen is evicted each call). Before timing, 100,000 accounts have
  called (the tally is full) and the calls cycle through them. The event hook counts
  as running, so concurrent calls are counted (and released between rounds, untimed,
  as the hook does in its own thread).
- **rejected by a limit**: the whole invocation as mod_python3 performs it (import,
  reload, ``import freeswitch``, handler) for the calls of a blocked account, against
  an empty handler module: the limit reject path, hang-up and ban line included.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import sys
from typing import Dict, List

from harness import ROOT, Row, interleaved, run_child, scratch, use_fake_freeswitch

BATCH = 200
KEYS = 100_000


def child(rounds: int) -> Dict[str, float]:
    use_fake_freeswitch()
    import fsctl

    from fs_guard.runtime import screening, sofia_events, state
    from fs_guard.runtime.config import ConfigStore
    from fs_guard.runtime.tally import Tally

    work = scratch()
    with open(os.path.join(ROOT, "freeswitch_conf", "fs_guard.json")) as handle:
        shipped = json.load(handle)
    shipped["fail2ban"]["filename"] = os.path.join(work, "ban.log")
    bare = json.loads(json.dumps(shipped))
    del bare["fail2ban"]["limits"]
    blocking = json.loads(json.dumps(shipped))
    blocking["fail2ban"]["limits"].append({"name": "lockout", "by": "account", "window": 60,
                                           "calls": {"critical": 1}, "action": "reject", "block_for": 86400,
                                           "ban": True})
    stores = {}
    for name, document in (("limits", shipped), ("bare", bare), ("blocking", blocking)):
        path = os.path.join(work, f"{name}.json")
        with open(path, "w") as handle:
            json.dump(document, handle)
        stores[name] = ConfigStore(path)
    with open(os.path.join(work, "empty_app.py"), "w") as handle:
        handle.write("def handler(session, args):\n    pass\n")
    sys.path.insert(0, work)
    fsctl.reset({"conf_dir": work, "log_dir": work})
    sofia_events._started_at = 1.0  # the hook runs: concurrent calls are counted
    calls = [0]

    def session(account: str, number: str = "1001"):
        calls[0] += 1
        made = fsctl.call_session(destination_number=number, context="default", sip_network_ip="198.51.100.10",
                                  sip_user_agent="Yealink SIP-T46S", sip_authorized="true", user_name=account,
                                  domain_name="pbx.example")
        made.uuid = f"call-{calls[0]}"
        return made

    def anonymous():
        calls[0] += 1
        made = fsctl.call_session(destination_number="4420794601", context="public",
                                  sip_network_ip=f"2001:db8::{calls[0]:x}", sip_user_agent="Sonus SBC")
        made.uuid = f"call-{calls[0]}"
        return made

    # One tally per configuration, as in a process that runs one of them: a switch of
    # configuration between rounds would make every round pay for adopting the other's limits.
    tallies = {name: Tally() for name in stores}
    state.CONFIG, state.TALLY = stores["limits"], tallies["limits"]
    for n in range(KEYS):  # fill the tally: 100,000 accounts have called (and hung up)
        made = session(f"u{n}")
        screening.screen(made, "")
        state.TALLY.release(made.uuid)
    sessions: Dict[str, List] = {}
    cursor = [0]

    def prepare(name: str) -> None:
        store = "blocking" if name in ("limit_reject", "empty") else "limits" if name.startswith("with_") else "bare"
        state.CONFIG, state.TALLY = stores[store], tallies[store]
        for made in sessions.get(name, ()):  # last round's calls end (CHANNEL_HANGUP_COMPLETE), untimed
            state.TALLY.release(made.uuid)
        fsctl.reset({"conf_dir": work, "log_dir": work})
        if store == "blocking":
            sessions[name] = [session("thief") for _ in range(BATCH)]
        elif name.endswith("_public"):
            sessions[name] = [anonymous() for _ in range(BATCH)]
        else:
            start = cursor[0]
            cursor[0] = (start + BATCH) % KEYS
            sessions[name] = [session(f"u{(start + i) % KEYS}") for i in range(BATCH)]
        gc.collect()

    def handler_only(name: str):
        def batch() -> int:
            for made in sessions[name]:
                screening.screen(made, "")
            return BATCH
        return batch

    main = sys.modules["__main__"].__dict__

    def invocation(name: str, module: str):
        def batch() -> int:
            for made in sessions[name]:
                loaded = importlib.reload(importlib.import_module(module))
                exec(compile("import freeswitch", "<string>", "exec"), main)
                loaded.handler(made, "")
            return BATCH
        return batch

    state.CONFIG, state.TALLY = stores["blocking"], tallies["blocking"]
    screening.screen(session("thief"), "")
    screening.screen(session("thief"), "")  # the second call blocks the account for a day
    batches = {
        "with_limits": handler_only("with_limits"),
        "without_limits": handler_only("without_limits"),
        "with_limits_public": handler_only("with_limits_public"),
        "without_limits_public": handler_only("without_limits_public"),
        "empty": invocation("empty", "empty_app"),
        "limit_reject": invocation("limit_reject", "fs_guard.screen"),
    }
    for name, batch in batches.items():
        prepare(name)
        batch()
    results = interleaved(batches, rounds, prepare)
    results["tracked"] = tallies["limits"].tracked()
    return results


def run(rounds: int = 40) -> List[Row]:
    us = run_child(__file__, str(rounds))
    added = us["with_limits"] - us["without_limits"]
    added_public = us["with_limits_public"] - us["without_limits_public"]
    over_empty = us["limit_reject"] - us["empty"]
    return [
        Row(f"limits, added per screened call: authenticated, default (shipped limits, {int(us['tracked']):,} "
            "keys tracked)", added, "µs/call", "≤ 3 µs", added <= 3.0,
            f"handler alone: {us['with_limits']:.1f} µs with limits, {us['without_limits']:.1f} µs without"),
        Row("limits, added per screened call: unauthenticated, public, a new address each call", added_public,
            "µs/call", "≤ 3 µs", added_public <= 3.0,
            f"handler alone: {us['with_limits_public']:.1f} µs with limits, "
            f"{us['without_limits_public']:.1f} µs without"),
        Row("screen invocation, call rejected by a limit (blocked account), over an empty handler", over_empty,
            "µs/call", "≤ 30 µs", over_empty <= 30.0,
            f"{us['limit_reject']:.1f} µs against {us['empty']:.1f} µs"),
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(int(sys.argv[2]))))
    else:
        from harness import table

        print(table(run()))
