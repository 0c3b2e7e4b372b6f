"""One fs_guard.screen invocation as mod_python3 performs it, against an empty handler.

mod_python3 does, per call (src/mod/languages/mod_python3/mod_python3.c,
eval_some_python): import the module named in the dialplan, RELOAD it, look up
``handler``, run ``PyRun_SimpleString("import freeswitch")``, call ``handler(session, args)``.
We do the same, in a child process with Python's bytecode cache on (as in FreeSWITCH), for: an empty handler module, fs-guard accepting a call,
fs-guard rejecting one (hang-up + ban line to a real file), and a naive guard that
re-reads its config and opens its log per call. The variants alternate round by round.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import sys
from typing import Dict, List

from harness import ROOT, Row, interleaved, run_child, scratch, use_fake_freeswitch

EMPTY = "def handler(session, args):\n    pass\n"
NAIVE = '''\
import datetime, json
from fs_guard.runtime.rules import CallFacts, decide
from fs_guard.runtime.config import parse_config

def handler(session, args):
    path = "{config}"
    with open(path, "rb") as handle:
        config = parse_config(handle.read(), path)
    number = session.getVariable("destination_number")
    ip = session.getVariable("sip_network_ip")
    verdict = decide(config.rules_for(session.getVariable("context")), CallFacts(number, "public", ip, None))
    if not verdict.accept:
        session.hangup("CALL_REJECTED")
        with open(config.ban_log_path, "a") as log:
            log.write(f"{{datetime.datetime.now().isoformat()}} ip[{{ip}}] reason={{verdict.reason}} dest={{json.dumps(number)}}\\n")
'''
BATCH = 200


def _import_freeswitch():
    """What mod_python3's PyRun_SimpleString("import freeswitch") does on every call: compile, then run."""
    return compile("import freeswitch", "<string>", "exec")


def child(rounds: int) -> Dict[str, float]:
    use_fake_freeswitch()
    import fsctl

    work = scratch()
    config = os.path.join(work, "fs_guard.json")
    shipped = os.path.join(ROOT, "freeswitch_conf", "fs_guard.json")
    with open(shipped if os.path.exists(shipped) else os.devnull) as handle:
        text = handle.read() or '{"fail2ban": {}}'
    with open(config, "w") as handle:
        handle.write(text)
    for name, body in (("empty_app", EMPTY), ("naive_guard", NAIVE.format(config=config))):
        with open(os.path.join(work, f"{name}.py"), "w") as handle:
            handle.write(body)
    sys.path.insert(0, work)
    fsctl.reset({"conf_dir": work, "log_dir": work})

    made = [0]

    def sessions(number: str) -> List:
        # Each call from its own address, as DID calls from many callers or a scanner's
        # spread arrive: one address calling thousands of times a minute would make the
        # shipped ip-call-rate limit alert on every call, which is not the common case.
        made[0] += BATCH
        return [fsctl.call_session(destination_number=number, context="public", sip_network_ip=address,
                                   network_addr=address, sip_user_agent="Yealink SIP-T46S")
                for address in (f"198.18.{n // 256 % 256}.{n % 256}" for n in range(made[0] - BATCH, made[0]))]

    variants = {
        "empty": ("empty_app", "1001"),
        "accept": ("fs_guard.screen", "1001"),
        "reject": ("fs_guard.screen", "0044123456"),
        "naive_accept": ("naive_guard", "1001"),
        "naive_reject": ("naive_guard", "0044123456"),
    }
    ready: Dict[str, List] = {}
    main = sys.modules["__main__"].__dict__

    def prepare(name: str) -> None:
        fsctl.reset({"conf_dir": work, "log_dir": work})
        ready[name] = sessions(variants[name][1])
        gc.collect()  # every variant starts with the same, empty, garbage collector

    def invoker(name: str):
        module = variants[name][0]

        def batch() -> int:
            for session in ready[name]:
                loaded = importlib.import_module(module)
                loaded = importlib.reload(loaded)
                handler = getattr(loaded, "handler")
                exec(_import_freeswitch(), main)  # mod_python3: PyRun_SimpleString("import freeswitch")
                handler(session, "")
            return BATCH
        return batch

    def reload_only(module: str):
        def batch() -> int:
            for _ in range(BATCH):
                importlib.reload(importlib.import_module(module))
            return BATCH
        return batch

    def handler_only(name: str):
        from fs_guard.runtime.screening import screen

        def batch() -> int:
            for session in ready[name]:
                screen(session, "")
            return BATCH
        return batch

    batches = {name: invoker(name) for name in variants}
    # Where the time goes: the two halves of an invocation, measured apart.
    variants["handler_accept"] = variants["accept"]
    variants["handler_reject"] = variants["reject"]
    variants["reload_empty"] = variants["empty"]
    variants["reload_screen"] = variants["accept"]
    batches.update({
        "reload_empty": reload_only("empty_app"),
        "reload_screen": reload_only("fs_guard.screen"),
        "handler_accept": handler_only("handler_accept"),
        "handler_reject": handler_only("handler_reject"),
    })
    for name, batch in batches.items():  # warm-up: bytecode written, config loaded, log open
        prepare(name)
        batch()
    results = interleaved(batches, rounds, prepare)
    results.update(reject_parts(rounds))
    return results


def reject_parts(rounds: int) -> Dict[str, float]:
    """The reject path's steps, each timed alone (µs): the profile behind the reject ratio."""
    from fs_guard.runtime import banlog, host, offence, state
    from fs_guard.runtime.rules import CallFacts, decide

    config = state.CONFIG.current()
    rules = config.rules_for("public")
    fields = offence.call_fields("public", "0044123456", "Yealink SIP-T46S")
    text = banlog.line("203.0.113.7", "deny_prefix", fields)
    steps = {
        "part_config": lambda: state.CONFIG.current(),
        "part_decide": lambda: decide(rules, CallFacts("0044123456", "public", None, "Yealink SIP-T46S")),
        "part_format": lambda: banlog.line("203.0.113.7", "deny_prefix",
                                           offence.call_fields("public", "0044123456", "Yealink SIP-T46S")),
        "part_write": lambda: state.BANLOG.write(config.ban_log_path, text),
        "part_console": lambda: host.console("warning", "fs-guard: rejected " + text),
    }

    def timed(step):
        def batch() -> int:
            for _ in range(BATCH):
                step()
            return BATCH
        return batch

    return interleaved({name: timed(step) for name, step in steps.items()}, rounds)


def run(rounds: int = 40) -> List[Row]:
    us = run_child(__file__, str(rounds))
    rows = [Row("screen invocation, empty handler module (baseline)", us["empty"], "µs/call")]
    for kind in ("accept", "reject"):
        over = us[kind] - us["empty"]
        naive = us[f"naive_{kind}"] - us["empty"]
        # The brief's target is for the reject path (shipped limits included): within 30 µs.
        target, met = ("≤ 30 µs", over <= 30.0) if kind == "reject" else ("", None)
        rows.append(Row(f"screen invocation, {kind}ed call, over the empty handler", over, "µs/call", target, met,
                        f"per-call config read + log open: +{naive:.0f} µs ({us[f'naive_{kind}'] / us['empty']:.2f}×)"))
        rows.append(Row(f"screen invocation, {kind}ed call ({us[kind] / us['empty']:.2f}× the empty handler)",
                        us[kind], "µs/call"))
    rows.append(Row("… reject path step by step: config check / decision / ban-line formatting / "
                    "ban-log write (stat for rotation + write) / console line",
                    us["part_config"], f"/ {us['part_decide']:.2f} / {us['part_format']:.2f} / "
                    f"{us['part_write']:.2f} / {us['part_console']:.2f} µs"))
    rows.append(Row("… of which: reload of the empty module / of fs_guard.screen",
                    us["reload_empty"], f"/ {us['reload_screen']:.1f} µs"))
    rows.append(Row("… of which: fs-guard's handler alone, accepted / rejected call",
                    us["handler_accept"], f"/ {us['handler_reject']:.1f} µs"))
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(int(sys.argv[2]))))
    else:
        from harness import table

        print(table(run()))
