"""With SELinux enforcing, install and audit say whether fail2ban can read the ban log.

The host is faked: its root (where ``sys/fs/selinux/enforce`` is) and the file labels
are passed in. The types are the policy's (fs_guard/fsconf/selinux.py says where each
fact was read): fail2ban_t reads log types; /var/log/.* is var_log_t; /usr/.* is usr_t.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest

import fstree
from fs_guard.fsconf import audit, fsmodel, install, selinux

SOURCE_LOG_DIR = "/usr/local/freeswitch/var/log/freeswitch"


def fake_host(tmp_path: Path, enforce: Optional[str], types: Dict[str, str]) -> selinux.Host:
    root = tmp_path / "host"
    if enforce is not None:
        (root / "sys" / "fs" / "selinux").mkdir(parents=True)
        (root / "sys" / "fs" / "selinux" / "enforce").write_text(enforce)
    return selinux.Host(str(root), types.get)


@pytest.mark.parametrize("enforce", [None, "0"], ids=["no-selinux", "permissive"])
def test_nothing_is_said_when_selinux_does_not_enforce(tmp_path, enforce):
    host = fake_host(tmp_path, enforce, {SOURCE_LOG_DIR: "usr_t"})
    assert selinux.ban_log_verdict(f"{SOURCE_LOG_DIR}/fs-guard-ban.log", host) is None


@pytest.mark.parametrize("kind", ["var_log_t", "httpd_log_t"])
def test_a_ban_log_of_a_log_type_is_readable_by_fail2ban(tmp_path, kind):
    host = fake_host(tmp_path, "1", {"/var/log/freeswitch": kind})
    verdict = selinux.ban_log_verdict("/var/log/freeswitch/fs-guard-ban.log", host)
    assert verdict.readable and verdict.commands == ()
    assert f"is {kind}: fail2ban may read it" in verdict.message


def test_a_source_builds_log_directory_gets_the_exact_commands(tmp_path):
    host = fake_host(tmp_path, "1", {SOURCE_LOG_DIR: "usr_t"})
    verdict = selinux.ban_log_verdict(f"{SOURCE_LOG_DIR}/fs-guard-ban.log", host)
    assert not verdict.readable
    assert verdict.commands == (
        "semanage fcontext -a -t var_log_t '/usr/local/freeswitch/var/log/freeswitch(/.*)?'",
        "restorecon -Rv /usr/local/freeswitch/var/log/freeswitch",
    )
    assert "is usr_t: fail2ban (fail2ban_t) reads only log types (var_log_t, *_log_t)" in verdict.message


def test_an_existing_ban_log_is_judged_by_its_own_label(tmp_path):
    ban_log = tmp_path / "fs-guard-ban.log"
    ban_log.write_text("")
    host = fake_host(tmp_path, "1", {str(tmp_path): "var_log_t", str(ban_log): "user_tmp_t"})
    verdict = selinux.ban_log_verdict(str(ban_log), host)
    assert not verdict.readable and "is user_tmp_t" in verdict.message


def test_the_file_context_is_a_regular_expression_of_the_directory(tmp_path):
    host = fake_host(tmp_path, "1", {})
    verdict = selinux.ban_log_verdict("/srv/fs-1.10/log dir/fs-guard-ban.log", host)
    assert verdict.commands == (
        "semanage fcontext -a -t var_log_t '/srv/fs-1\\.10/log dir(/.*)?'",
        "restorecon -Rv '/srv/fs-1.10/log dir'",
    )
    assert "is unlabelled" in verdict.message


def test_the_type_is_read_from_the_files_security_label(tmp_path):
    path = tmp_path / "fs-guard-ban.log"
    path.write_text("")
    try:
        os.setxattr(str(path), "security.selinux", b"system_u:object_r:var_log_t:s0\0")
    except OSError as exc:  # not root, or a file system without security labels
        pytest.skip(f"cannot label a file here: {exc}")
    assert selinux.file_type(str(path)) == "var_log_t"
    assert selinux.file_type(str(tmp_path / "missing")) is None


def installed_site(tmp_path: Path) -> fstree.FsTree:
    tree = fstree.stock(tmp_path / "etc" / "freeswitch")
    (tmp_path / "fail2ban").mkdir()
    return tree


def test_install_says_fail2ban_cannot_read_the_ban_log_and_what_to_run(tmp_path):
    tree = installed_site(tmp_path)
    logs = tmp_path / "log"
    host = fake_host(tmp_path, "1", {str(logs): "usr_t"})
    python = install.PythonTarget(place=False, python=sys.executable, script_dir=str(tmp_path))
    plan = install.plan_install(str(tree.root), str(tmp_path / "fail2ban"), str(logs), python=python, host=host)
    semanage = f"semanage fcontext -a -t var_log_t '{logs}(/.*)?'"
    assert any(note.startswith(f"SELinux is enforcing and the ban log {logs}/fs-guard-ban.log is usr_t") for note in plan.notes)
    assert any(semanage in note for note in plan.notes)
    assert plan.next_steps[0].startswith(semanage) and plan.next_steps[1].startswith(f"restorecon -Rv {logs}")


def test_audit_reports_a_ban_log_fail2ban_cannot_read(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no fs_cli: the log directory comes from the layout
    tree = fstree.stock(tmp_path / "usr" / "local" / "freeswitch" / "etc" / "freeswitch")
    logs = tmp_path / "usr" / "local" / "freeswitch" / "var" / "log" / "freeswitch"
    logs.mkdir(parents=True)
    config = fsmodel.load(str(tree.root))
    unreadable = fake_host(tmp_path, "1", {str(logs): "usr_t"})
    (finding,) = [f for f in audit.audit(config, unreadable) if f.check == "selinux-ban-log"]
    assert finding.severity == "high" and finding.file == f"{logs}/fs-guard-ban.log"
    assert finding.fix == f"as root: semanage fcontext -a -t var_log_t '{logs}(/.*)?' && restorecon -Rv {logs}"
    readable = fake_host(tmp_path / "other", "1", {str(logs): "var_log_t"})
    assert not [f for f in audit.audit(config, readable) if f.check == "selinux-ban-log"]
    assert not [f for f in audit.audit(config) if f.check == "selinux-ban-log"]
