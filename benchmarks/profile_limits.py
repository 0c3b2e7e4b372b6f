#!/usr/bin/env python3
"""Where the fraud limits' time goes, in machine instructions (valgrind's callgrind): a count
that a busy machine does not blur as it blurs a clock.

- The limits step of an authenticated call, step by step: ``bench_limits.py``'s call
  (``default``, the shipped limits, an account that has called before, extension ``1001``),
  and the same account dialling a national number (which ``account-country-fanout``
  counts); then the limits' share of ``bench_limits.py``'s unauthenticated call in ``public``.
- With ``--replay``: ``fs-guard replay`` of ``make_attack_trace.py --scale 8`` on the demo
  configuration and on the shipped one (instructions per line, reading and the report
  included); and on the demo configuration with every number's destination classified
  beforehand (the difference is what classifying never-seen numbers costs the replay).

    python3 benchmarks/profile_limits.py [--replay | --replay-only] [--source DIR]   # needs valgrind

``--source DIR`` profiles the ``fs_guard`` package in DIR (another commit's tree, e.g. from
``git archive``) with this checkout's configuration and fake ``freeswitch``: before and after.
Each step runs in a process of its own under callgrind, which counts only inside ``sum()``:
the step is mapped over prepared calls there, and nothing else in the process calls ``sum``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

from harness import FAKES, ROOT

CALLS = 500
EXTENSION, NATIONAL = "1001", "2125550100"
#: bench_limits.py's other call: unauthenticated, in public, from a new address each call.
PUBLIC, PUBLIC_NUMBER = "public", "4420794601"
STEPS = (
    ("screen", "the whole handler, shipped limits"),
    ("bare", "the whole handler, the same configuration without limits"),
    ("limiter", "the limits step (limiter.screen), all of it"),
    ("account", "… reading the account (3 channel variables)"),
    ("counted", "… reading fs_guard_limits (1 channel variable)"),
    ("address", "… reading the source address (1 channel variable, inet_pton/ntop)"),
    ("for_call", "… the call's checks (limits.for_call)"),
    ("count", "… counting (Tally.count)"),
    ("classify", "classifying the number (in the rules' step here; cached)"),
    ("none", "(a no-op through the same loop, subtracted above)"),
)


def child(step: str, kind: str) -> None:
    import fsctl  # the fake freeswitch's control, on PYTHONPATH after the profiled tree

    from fs_guard.runtime import limiter, offence, screening, sofia_events, state
    from fs_guard.runtime.config import ConfigStore
    from fs_guard.runtime.limits import for_call
    from fs_guard.runtime.rules import destination_of
    from fs_guard.runtime.tally import Tally

    work = tempfile.mkdtemp()
    with open(os.path.join(ROOT, "freeswitch_conf", "fs_guard.json")) as handle:
        document = json.load(handle)
    document["fail2ban"]["filename"] = os.path.join(work, "ban.log")
    if step == "bare":
        del document["fail2ban"]["limits"]
    path = os.path.join(work, "fs_guard.json")
    with open(path, "w") as handle:
        json.dump(document, handle)
    fsctl.reset({"conf_dir": work, "log_dir": work})
    sofia_events._started_at = 1.0  # the hook runs: concurrent calls are counted
    state.CONFIG, state.TALLY = ConfigStore(path), Tally()
    loaded = state.CONFIG.reload()  # now, not on the first call (which waits for a slow load only so long)
    if loaded.last_error:
        raise SystemExit(loaded.last_error)
    made = [0]
    public = kind == PUBLIC
    context, number = ("public", PUBLIC_NUMBER) if public else ("default", kind)

    def session(account: str):
        made[0] += 1
        if public:
            call = fsctl.call_session(destination_number=number, context=context,
                                      sip_network_ip=f"2001:db8::{made[0]:x}", sip_user_agent="Sonus SBC")
        else:
            call = fsctl.call_session(destination_number=number, context=context, sip_network_ip="198.51.100.10",
                                      sip_user_agent="Yealink SIP-T46S", sip_authorized="true", user_name=account,
                                      domain_name="pbx.example")
        call.uuid = f"call-{made[0]}"
        return call

    for n in range(CALLS):  # every account has called (and hung up) once
        call = session(f"u{n}")
        screening.screen(call, "")
        state.TALLY.release(call.uuid)
    config = state.CONFIG.current()
    limits, rules, tally = config.limits, config.rules_for(context), state.TALLY
    destination = destination_of(rules, number)  # as the screen's rules step hands it on
    country = destination.region if destination is not None else ""
    address = "198.51.100.10" if step == "count" else None  # what the limiter reads where a limit needs it
    # Each call with its account and its checks, made before counting starts.
    calls = [(session(f"u{n}"), None if public else f"u{n}@pbx.example") for n in range(CALLS)]
    prepared = [(call, account, *for_call(limits, context, number, address, account, (), destination))
                for call, account in calls]
    steps = {
        "screen": lambda call, account, checks, identities: screening.screen(call, ""),
        "bare": lambda call, account, checks, identities: screening.screen(call, ""),
        "limiter": lambda call, account, checks, identities: limiter.screen(call, config, rules, context, number,
                                                                            None, destination),
        "account": lambda call, account, checks, identities: limiter.account_of(call.getVariable),
        "counted": lambda call, account, checks, identities: call.getVariable(limiter.COUNTED_VARIABLE),
        "address": lambda call, account, checks, identities: offence.canonical_address(
            call.getVariable("sip_network_ip") or call.getVariable("network_addr")),
        "for_call": lambda call, account, checks, identities: for_call(limits, context, number, address, account,
                                                                       (), destination),
        "count": lambda call, account, checks, identities: tally.count(limits, checks, identities, call.uuid, number,
                                                                       time.time(), country=country),
        "classify": lambda call, account, checks, identities: destination_of(rules, number),
        "none": lambda call, account, checks, identities: None,
    }
    run = steps[step]
    print(sum(map(lambda each: run(*each) is None, prepared)))


def replay_child(trace: str, which: str, classified: bool) -> None:
    import functools

    from fs_guard.fsconf import bundle
    from fs_guard.offline.cli.replay import DEMO_CONFIG, replay_files
    from fs_guard.offline.replay import shipped_jail
    from fs_guard.runtime.config import parse_config

    path = DEMO_CONFIG if which == "demo" else bundle.path(bundle.FREESWITCH, "fs_guard.json")
    with open(path, "rb") as handle:
        config = parse_config(handle.read(), path)
    jail = shipped_jail()
    if classified:  # every number's destination answered from a cache filled before counting starts
        with open(trace) as handle:
            numbers = {json.loads(line).get("number") for line in handle}
        for classifier in {id(rules.classifier): rules.classifier for rules in (config.base, *config.contexts.values())
                           if rules.classifier is not None}.values():
            classifier._cached = functools.lru_cache(maxsize=None)(classifier._classify)
            for number in numbers:
                classifier.classify(number)
    reports = []
    print(sum(map(lambda _: reports.append(replay_files([trace], None, config, jail, None)) is None, [0])))
    print(json.dumps({"lines": reports[0].files[0].lines, "screened": reports[0].limits.screened}), file=sys.stderr)


def callgrind(source: str, *args: str) -> str:
    """Run this script's child under callgrind with ``source`` first on the path; its stderr."""
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, ROOT, FAKES]), "PYTHONHASHSEED": "0"}
        done = subprocess.run(["valgrind", "--tool=callgrind", "--toggle-collect=builtin_sum",
                               f"--callgrind-out-file={os.path.join(work, 'out')}", sys.executable, __file__,
                               *args], env=env, capture_output=True, text=True, check=True)
    return done.stderr


def collected(stderr: str) -> int:
    return int(re.search(r"Collected : (\d+)", stderr).group(1))


def profile_call(source: str, number: str) -> Dict[str, float]:
    """Instructions per call of each step for a call to ``number``, the loop subtracted."""
    counted = {step: collected(callgrind(source, "--child", step, number)) / CALLS for step, _ in STEPS}
    loop = counted.pop("none")
    return {step: value - loop for step, value in counted.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=ROOT, help="the tree whose fs_guard package is profiled")
    parser.add_argument("--replay", action="store_true", help="also count a replay on the demo and shipped configs")
    parser.add_argument("--replay-only", action="store_true", help="count the replays only")
    args = parser.parse_args()
    source = os.path.abspath(args.source)
    if not args.replay_only:
        columns = {number: profile_call(source, number) for number in (EXTENSION, NATIONAL)}
        print(f"| step (instructions per call) | {EXTENSION} (extension) | {NATIONAL} (national) |\n|---|---|---|")
        for step, what in STEPS[:-1]:
            print(f"| {what} | " + " | ".join(f"{columns[n][step]:,.0f}" for n in columns) + " |")
        print("| the limits' share of the handler (with - without) | "
              + " | ".join(f"{columns[n]['screen'] - columns[n]['bare']:,.0f}" for n in columns) + " |")
        public = {step: collected(callgrind(source, "--child", step, PUBLIC)) / CALLS for step in ("screen", "bare")}
        print(f"\nUnauthenticated, public, a new address each call: the limits' share of the handler "
              f"{public['screen'] - public['bare']:,.0f} instructions")
    if args.replay or args.replay_only:
        with tempfile.TemporaryDirectory() as work:
            trace = os.path.join(work, "trace.jsonl")
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_attack_trace.py"), "--scale", "8",
                            "-o", trace], check=True, capture_output=True)
            rows: List[str] = []
            for which, classified in (("demo", False), ("demo", True), ("shipped", False)):
                stderr = callgrind(source, "--replay-child", trace, which, "classified" if classified else "")
                facts = json.loads(next(line for line in stderr.splitlines() if line.startswith("{")))
                total = collected(stderr)
                rows.append(f"| replay, {which} configuration{', numbers classified beforehand' if classified else ''}"
                            f" ({facts['lines']:,} lines, {facts['screened']:,} screened) | {total / 1e6:,.0f} million"
                            f" | {total / facts['lines']:,.0f} |")
        print("\n| replay | instructions | per line |\n|---|---|---|\n" + "\n".join(rows))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["--replay-child"]:
        replay_child(sys.argv[2], sys.argv[3], sys.argv[4] == "classified")
    else:
        main()
