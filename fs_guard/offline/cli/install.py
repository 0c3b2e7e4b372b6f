"""``fs-guard install`` and ``fs-guard uninstall``: the bundle into a FreeSWITCH configuration."""

from __future__ import annotations

import argparse
import sys
from typing import List

from fs_guard.fsconf import install, modpython, selinux

from fs_guard.runtime import host
from fs_guard.fsconf.bundle import BundleMissing
from fs_guard.fsconf.fsmodel import NotFreeSwitch


def register(sub: "argparse._SubParsersAction") -> None:
    add = sub.add_parser(
        "install",
        help="put the screen, mod_python3, the events hook and the fail2ban jail in place",
        description="Edit a FreeSWITCH configuration so that fs_guard.screen is the first action of "
        "the public and default contexts, mod_python3 is loaded and fs_guard.events starts; install "
        "fs_guard.json (never over an existing one) and the fail2ban jail and filter; put fs-guard and "
        "its dependencies, built for the Python mod_python3.so is linked against, into FreeSWITCH's "
        "script directory (the distribution's Python is never touched), and refuse unless that Python "
        "imports them from there. Idempotent; keeps a backup of every file it edits under CONF_DIR/.fs-guard/.",
    )
    conf_dir_option(add)
    add.add_argument(
        "--fail2ban-dir",
        metavar="DIR",
        help=f"fail2ban's configuration directory (default: {install.DEFAULT_FAIL2BAN_DIR}, skipped when missing)",
    )
    add.add_argument(
        "--log-dir",
        metavar="DIR",
        help="FreeSWITCH's log_dir, where the ban log is (default: the running FreeSWITCH's answer to "
        'fs_cli -x "global_getvar log_dir" when its conf_dir is CONF_DIR, else log_dir set in vars.xml, '
        "else PREFIX/var/log/freeswitch for CONF_DIR PREFIX/etc/freeswitch (a source build), else ../log "
        f"next to an older source build's conf/, else {host.DEFAULT_LOG_DIR})",
    )
    add.add_argument(
        "--region",
        metavar="XX",
        help="your country's ISO 3166 code (GB, US, DE, ...), written into the shipped fs_guard.json as "
        "dialling.region (default: default_country set in vars.xml; an existing fs_guard.json is never changed)",
    )
    add.add_argument(
        "--context",
        action="append",
        metavar="NAME",
        help="a context to screen (repeatable; default: " + " and ".join(install.DEFAULT_CONTEXTS) + ")",
    )
    python = add.add_argument_group("mod_python3's Python")
    python.add_argument(
        "--python",
        metavar="PATH",
        help="the interpreter mod_python3 runs (default: the python3.X of the libpython mod_python3.so is "
        "linked against; it must be that version)",
    )
    python.add_argument(
        "--script-dir",
        metavar="DIR",
        help="FreeSWITCH's script directory, first on mod_python3's sys.path (default: the running FreeSWITCH's "
        'answer to fs_cli -x "global_getvar script_dir", else the layout\'s: '
        f"{modpython.PACKAGED_SCRIPT_DIR} for {modpython.PACKAGED_CONF_DIR}, PREFIX/share/freeswitch/scripts "
        "for PREFIX/etc/freeswitch, PREFIX/scripts for PREFIX/conf)",
    )
    python.add_argument(
        "--mod-dir",
        metavar="DIR",
        help=f"where {modpython.MODULE_FILE} is (default: the running FreeSWITCH's mod_dir, else "
        f"{' or '.join(modpython.PACKAGED_MOD_DIRS)}, PREFIX/lib/freeswitch/mod, PREFIX/mod)",
    )
    python.add_argument(
        "--package",
        metavar="SPEC",
        help="what pip installs into the script directory: a wheel, a source directory or a requirement "
        "(default: the source this fs-guard was installed from, else fs-guard==VERSION)",
    )
    python.add_argument(
        "--wheels",
        metavar="DIR",
        help="install only from the wheels in DIR (pip --no-index --find-links DIR), for hosts without an index; "
        "build them for the same Python version with: pip wheel -w DIR .",
    )
    python.add_argument(
        "--check-import",
        action="store_true",
        help="do not put fs-guard into the script directory: only check that mod_python3's Python imports this "
        "version of it (with the script directory first, as mod_python3 runs it)",
    )
    _dry_run(add)
    add.set_defaults(run=run_install)

    remove = sub.add_parser(
        "uninstall",
        help="undo what install did, byte for byte",
        description="Restore every file install edited and remove every file it created, as recorded in "
        "CONF_DIR/.fs-guard/. A file changed since install has fs-guard's edits taken out, or is kept.",
    )
    conf_dir_option(remove)
    _dry_run(remove)
    remove.set_defaults(run=run_uninstall)


def conf_dir_option(parser: argparse.ArgumentParser) -> None:
    """``--conf-dir``, as install, uninstall and audit all take it."""
    parser.add_argument(
        "--conf-dir",
        default=host.DEFAULT_CONF_DIR,
        metavar="DIR",
        help=f"FreeSWITCH's configuration directory (default: {host.DEFAULT_CONF_DIR})",
    )


def _dry_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="show the changes as a unified diff; change nothing")


def _show(plan: install.Plan, dry_run: bool, done: List[str]) -> None:
    if dry_run:
        for change in plan.changes:
            if not change.group:
                sys.stdout.write(install.diff(plan.conf_dir, change))
        done = install.group_lines(plan.changes, "would install")
    for line in done:
        print(f"  {line}")
    for note in plan.notes:
        print(f"note: {note}")
    for kept in plan.kept:
        print(f"kept: {kept}")
    if plan.next_steps:
        print("then run:" if not dry_run else "after the install, run:")
        for step in plan.next_steps:
            print(f"  {step}")


def python_target(args: argparse.Namespace) -> install.PythonTarget:
    return install.PythonTarget(
        not args.check_import, args.python, args.script_dir, args.mod_dir, args.package, args.wheels
    )


def run_install(args: argparse.Namespace) -> int:
    try:
        plan = install.plan_install(
            args.conf_dir, args.fail2ban_dir, args.log_dir, args.context or install.DEFAULT_CONTEXTS,
            python_target(args), selinux.Host(), args.region,
        )
    except (NotFreeSwitch, install.InstallError, BundleMissing, OSError) as exc:
        print(f"fs-guard install: {exc}", file=sys.stderr)
        return 2
    if not plan.changes:
        print(f"fs-guard is installed in {plan.conf_dir}: nothing to change")
        _show(plan, args.dry_run, [])
        return 0
    if args.dry_run:
        print(f"fs-guard install --dry-run: {len(plan.changes)} file(s) would change; nothing was written")
        _show(plan, True, [])
        return 0
    print(f"fs-guard install: {plan.conf_dir}")
    try:
        done = install.apply_install(plan)
    except OSError as exc:
        print(f"fs-guard install: {exc} (run fs-guard uninstall to undo what was written)", file=sys.stderr)
        return 2
    _show(plan, False, done)
    return 0


def run_uninstall(args: argparse.Namespace) -> int:
    try:  # what is printed comes after: a closed stdout is no uninstall error
        plan = install.plan_uninstall(args.conf_dir)
        done = [] if args.dry_run else install.apply_uninstall(plan)
    except (install.InstallError, OSError) as exc:
        print(f"fs-guard uninstall: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(f"fs-guard uninstall --dry-run: {len(plan.changes)} file(s) would change; nothing was written")
    else:
        print(f"fs-guard uninstall: {plan.conf_dir}")
    _show(plan, args.dry_run, done)
    return 1 if plan.kept else 0
