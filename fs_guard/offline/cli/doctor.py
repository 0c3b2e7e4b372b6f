"""``fs-guard doctor``: the live chain, link by link, with the command that fixes each broken one."""

from __future__ import annotations

import argparse
import json

from fs_guard import __version__
from fs_guard.fsconf import doctor
from fs_guard.fsconf.install import DEFAULT_CONTEXTS
from fs_guard.fsconf.live import FS_CLI_TIMEOUT, Fail2banClient, FsCli
from fs_guard.offline.cli.install import conf_dir_option
from fs_guard.runtime.config import locate_config

LABELS = {doctor.OK: "ok", doctor.PROBLEM: "PROBLEM", doctor.UNKNOWN: "UNKNOWN", doctor.SKIPPED: "-"}
VERDICTS = {doctor.EXIT_OK: "all good", doctor.EXIT_PROBLEM: "broken: see PROBLEM above",
            doctor.EXIT_UNKNOWN: "could not check everything: see UNKNOWN above"}


def register(sub: "argparse._SubParsersAction") -> None:
    parser = sub.add_parser(
        "doctor",
        help="check the live chain: FreeSWITCH, mod_python3, the screen, the hook, config, ban log, fail2ban",
        description="Ask the running FreeSWITCH (fs_cli), fail2ban (fail2ban-client) and, when configured, "
        "the cluster's Redis and the metrics endpoint whether each link of the chain works, and print the "
        "command that fixes each broken link. Changes nothing; every probe has a timeout. Exit status: "
        "0 all good, 1 a problem, 2 something could not be checked (FreeSWITCH not running, ...). When fs_cli "
        "gets no answer, FreeSWITCH is asked on the event socket that --conf-dir's event_socket.conf.xml sets up "
        "(with its password); once FreeSWITCH answers, it says where its configuration is.",
    )
    parser.add_argument(
        "--context", action="append", metavar="NAME",
        help="a context that must run the screen first (repeatable; default: " + " and ".join(DEFAULT_CONTEXTS) + ")",
    )
    conf_dir_option(parser)
    parser.add_argument("--fail2ban-socket", metavar="PATH", help="fail2ban's socket (default: fail2ban-client's)")
    parser.add_argument("--timeout", type=float, default=FS_CLI_TIMEOUT, metavar="SECONDS",
                        help="how long each fs_cli, event socket or fail2ban-client call may take "
                        f"(default: {FS_CLI_TIMEOUT:g})")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout, for tools")
    parser.set_defaults(run=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    timeout = max(args.timeout, 0.1)
    probes = doctor.Probes(freeswitch=FsCli(timeout=timeout),
                           fail2ban=Fail2banClient(socket=args.fail2ban_socket, timeout=timeout), timeout=timeout)
    findings = doctor.examine(probes, locate_config().path, args.context or DEFAULT_CONTEXTS, args.conf_dir)
    status = doctor.exit_status(findings)
    if args.json:
        print(json.dumps(doctor.as_json(findings), indent=2))
        return status
    width = max(len(finding.link) for finding in findings)
    for finding in findings:
        print(f"{LABELS[finding.status]:<8} {finding.link:<{width}}  {_text(finding.what)}")
        if finding.fix and finding.status != doctor.OK:
            print(f"{'':<8} {'':<{width}}  fix: {_text(finding.fix)}")
    print(f"fs-guard doctor {__version__}: {VERDICTS[status]}")
    return status


def _text(value: str) -> str:
    """One line, nothing a terminal would obey: what fs_cli and others said is shown, not run."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in value[:2000])
