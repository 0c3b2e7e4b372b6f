"""One FreeSWITCH node of a test cluster, in a process of its own, driven over stdin/stdout.

    python tests/cluster_node.py CONF_DIR LOG_DIR [at-once]     (PYTHONPATH: tests/fakes)

It runs what FreeSWITCH would: the ``fs_guard.events`` startup script (which follows the
cluster's ban stream and releases hung-up calls) and ``fs_guard.screen`` for each call, on
the fake ``freeswitch`` module, with CONF_DIR/fs_guard.json. Once it reads the cluster's ban
stream it prints ``{"ready": true}`` (with ``at-once``: as soon as the startup script is started,
as FreeSWITCH takes calls right after it starts); then it takes one JSON command per line and
prints one JSON answer per line:

- ``{"op": "calls", "count": N, "threads": T, "at": EPOCH, "number": "100", "ip": ..., "vars": {...}}``:
  from time ``at`` on, T threads place N calls in all; answers ``{"causes": [...], "uuids": [...]}``
  (a call's number is ``number`` with ``{n}`` replaced by its index);
- ``{"op": "hangup", "uuids": [...]}``: those calls end (CHANNEL_HANGUP_COMPLETE fired), and the
  answer comes once the hook has handled it;
- ``{"op": "status"}``: ``fs_guard.status json``, parsed; ``{"op": "api", "args": "..."}``:
  ``fs_cli -x "python fs_guard.status ARGS"``, as ``{"text": ...}``;
- ``{"op": "quit"}``: FreeSWITCH shuts down; the answer says how long the hook took to return.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import fsctl
from modpython import run_api, run_app, run_startup, unload


def _status() -> dict:
    return json.loads(run_api("fs_guard.status json"))


def _calls(command: dict, sessions: dict) -> dict:
    count, threads = command["count"], command.get("threads", 1)
    results: list = [None] * count
    indexes = iter(range(count))
    lock = threading.Lock()

    def place() -> None:
        while True:
            with lock:
                index = next(indexes, None)
            if index is None:
                return
            session = fsctl.call_session(
                destination_number=command.get("number", "100").replace("{n}", str(index)),
                context=command.get("context", "default"), sip_network_ip=command.get("ip", "192.0.2.1"),
                **command.get("vars", {}))
            run_app("fs_guard.screen", session)
            results[index] = session

    delay = command.get("at", 0) - time.time()
    if delay > 0:
        time.sleep(delay)
    pool = [threading.Thread(target=place) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    for session in results:
        sessions[session.uuid] = session
    return {"causes": [s.hangupCause() for s in results], "uuids": [s.uuid for s in results]}


def main(conf_dir: str, log_dir: str, at_once: bool) -> None:
    fsctl.reset({"conf_dir": conf_dir, "log_dir": log_dir})
    hook = run_startup("fs_guard.events")
    if not at_once:
        fsctl.wait_until(fsctl.idle)
        fsctl.wait_until(lambda: _status()["cluster"]["ban_follower"]["reading_since"] is not None, timeout=20)
    print(json.dumps({"ready": True}), flush=True)
    sessions: dict = {}
    for raw in sys.stdin:
        command = json.loads(raw)
        op = command["op"]
        if op == "calls":
            answer = _calls(command, sessions)
        elif op == "hangup":
            for uuid in command["uuids"]:
                fsctl.hang_up(sessions.pop(uuid))
            fsctl.wait_until(lambda: fsctl.queued() == 0 and fsctl.idle())
            answer = {"ok": True}
        elif op == "status":
            answer = _status()
        elif op == "api":
            answer = {"text": run_api("fs_guard.status " + command["args"])}
        elif op == "quit":
            began = time.monotonic()
            fsctl.stop_running()
            returned = hook.join(10)
            unload()
            print(json.dumps({"returned": returned, "seconds": time.monotonic() - began}), flush=True)
            return
        else:
            answer = {"error": f"unknown op {op}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:] == ["at-once"])
