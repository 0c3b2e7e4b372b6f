"""Whether fail2ban may read the ban log when SELinux is enforcing, and the commands that fix it.

Read from the policy sources (fedora-selinux/selinux-policy, which RHEL-family hosts
ship, and SELinuxProject/refpolicy), not guessed:

- fail2ban.te: ``logging_read_all_logs(fail2ban_t)``: fail2ban reads every file type
  with the ``logfile`` attribute, which ``logging_log_file()`` gives ``var_log_t`` and
  the ``*_log_t`` types (plus its own ``fail2ban_log_t``).
- logging.fc: ``/var/log/.*`` is ``var_log_t``, so the packages' /var/log/freeswitch is
  readable as it is; files.fc: ``/usr/.*`` and ``/opt/.*`` are ``usr_t``, so a source
  build's log directory (/usr/local/freeswitch/...) is not.
- Neither policy has a FreeSWITCH module (no freeswitch.te/.fc): no FreeSWITCH type
  limits what FreeSWITCH writes, and ``var_log_t`` is the type to give its log directory.

``chcon`` (the seed-era advice) does not survive a relabel; ``semanage fcontext`` records
the rule in the policy and ``restorecon`` applies it.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

#: Where the kernel says whether SELinux enforces ("1") or only logs ("0"); what getenforce reads.
ENFORCE_FILE = "sys/fs/selinux/enforce"
LOG_TYPE = "var_log_t"
_REGEX_SPECIALS = frozenset(".^$*+?()[]{}|\\")


def file_type(path: str) -> Optional[str]:
    """The SELinux type of a file (``var_log_t``), None when it has no label or does not exist."""
    try:
        label = os.getxattr(path, "security.selinux").decode("ascii", "replace").rstrip("\0")
    except (OSError, AttributeError):
        return None
    parts = label.split(":")
    return parts[2] if len(parts) >= 3 else None


@dataclass(frozen=True)
class Host:
    """The host's SELinux, as files under ``root`` and the labels ``type_of`` reads (tests fake both)."""

    root: str = "/"
    type_of: Callable[[str], Optional[str]] = field(default=file_type)

    def enforcing(self) -> bool:
        try:
            with open(os.path.join(self.root, ENFORCE_FILE), "rb") as handle:
                return handle.read(1) == b"1"
        except OSError:
            return False  # no selinuxfs: SELinux is disabled or absent


def readable_by_fail2ban(kind: Optional[str]) -> bool:
    """Whether fail2ban_t may read a file of this type (the logfile attribute, by its naming)."""
    return kind is not None and (kind == LOG_TYPE or kind.endswith("_log_t"))


def _regex(path: str) -> str:
    return "".join("\\" + c if c in _REGEX_SPECIALS else c for c in path)


@dataclass(frozen=True)
class Verdict:
    readable: bool
    message: str
    commands: Tuple[str, ...]  # what to run, as root, when not readable


def ban_log_verdict(ban_log: str, host: Host) -> Optional[Verdict]:
    """fail2ban and the ban log under enforcing SELinux; None when SELinux does not enforce.

    A ban log not yet written takes its directory's type (a file gets its directory's
    type unless the policy says otherwise), so the directory is looked at then.
    """
    if not host.enforcing():
        return None
    directory = os.path.dirname(ban_log)
    kind = host.type_of(ban_log if os.path.exists(ban_log) else directory)
    if readable_by_fail2ban(kind):
        return Verdict(True, f"SELinux is enforcing and the ban log {ban_log} is {kind}: fail2ban may read it", ())
    commands = (
        f"semanage fcontext -a -t {LOG_TYPE} {shlex.quote(_regex(directory) + '(/.*)?')}",
        f"restorecon -Rv {shlex.quote(directory)}",
    )
    return Verdict(
        False,
        f"SELinux is enforcing and the ban log {ban_log} is {kind or 'unlabelled'}: fail2ban (fail2ban_t) reads "
        f"only log types ({LOG_TYPE}, *_log_t), so its jail would see no line; label {directory} {LOG_TYPE} "
        f"for good (chcon is undone by the next relabel)",
        commands,
    )
