"""``fs-guard audit``: report a FreeSWITCH configuration's toll-fraud holes."""

from __future__ import annotations

import argparse
import json
import sys

from fs_guard.fsconf import audit, fsmodel, selinux
from fs_guard.offline.cli.install import conf_dir_option


def register(sub: "argparse._SubParsersAction") -> None:
    parser = sub.add_parser(
        "audit",
        help="check a FreeSWITCH configuration for toll-fraud holes",
        description="Read a FreeSWITCH configuration as FreeSWITCH does (includes and $${vars} resolved) "
        "and report each toll-fraud hole with its file, line, severity and fix (with SELinux enforcing, also "
        "whether fail2ban may read the ban log), and notes (severity info) on what is worth knowing but no "
        "hole. Exit status: 0 clean (notes at most), 1 holes found, 2 not a FreeSWITCH configuration.",
    )
    conf_dir_option(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout, for tools")
    parser.set_defaults(run=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    try:
        config = fsmodel.load(args.conf_dir)
    except fsmodel.NotFreeSwitch as exc:
        if args.json:
            print(json.dumps({"conf_dir": args.conf_dir, "error": str(exc)}))
        print(f"fs-guard audit: {exc}", file=sys.stderr)
        return 2
    findings = audit.audit(config, selinux.Host())
    status = 1 if audit.holes(findings) else 0
    if args.json:
        print(json.dumps(audit.as_json(config, findings), indent=2))
        return status
    print(f"fs-guard audit: {config.conf_dir}")
    for finding in findings:
        where = f"{finding.file}:{finding.line}" if finding.line else finding.file
        print(f"\n{finding.severity.upper():<8}  {where}  [{finding.check}]")
        print(f"    {finding.message}")
        print(f"    fix: {finding.fix}")
    if not findings:
        print("no findings")
        return 0
    counts = ", ".join(
        f"{n} {severity}" for severity in audit.SEVERITIES for n in [sum(f.severity == severity for f in findings)] if n
    )
    print(f"\n{len(findings)} finding(s): {counts}" + ("" if status else " (notes only: no hole)"))
    return status
