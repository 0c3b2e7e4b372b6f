"""The FreeSWITCH a fs-guard configuration file belongs to, as the ``fs-guard`` command sees it.

Outside FreeSWITCH its global variables cannot be read, so check-config, test and replay
find its directories as install does: the ban log by ``install.resolve_log_dir``, the
rule sets its screen decides with from its dialplan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Tuple

from fs_guard.fsconf import fsmodel, fsxml, install
from fs_guard.runtime import host
from fs_guard.runtime.config import DEFAULT_FILENAME, Config


def conf_dir_of(config_path: Optional[str]) -> str:
    """FreeSWITCH's configuration directory for a fs-guard configuration file: the file's own
    directory when FreeSWITCH's configuration is there (install puts it there), else conf_dir."""
    if config_path:
        directory = os.path.dirname(os.path.abspath(config_path))
        if os.path.isfile(os.path.join(directory, fsxml.ROOT_FILE)):
            return directory
    return host.conf_dir()


def ban_log(config: Config) -> install.BanLogPlace:
    """Where a configuration's ban log is, found as install found it for the jail."""
    return install.ban_log_place(config.raw.get("filename", DEFAULT_FILENAME), conf_dir_of(config.source))


@dataclass(frozen=True)
class Screened:
    """The rule sets live calls are decided with, and where that was read."""

    names: Tuple[str, ...]
    source: str


def screened(config: Config) -> Screened:
    """The rule sets the dialplan's screen decides with; before install (or without a FreeSWITCH
    configuration to read), the contexts install screens."""
    conf_dir = conf_dir_of(config.source)
    try:
        names = tuple(fsmodel.screened_rule_sets(fsmodel.load(conf_dir)))
    except fsmodel.NotFreeSwitch:
        return Screened(install.DEFAULT_CONTEXTS, f"what fs-guard install screens; no FreeSWITCH configuration in "
                                                  f"{conf_dir}")
    if not names:
        return Screened(install.DEFAULT_CONTEXTS, f"what fs-guard install screens; it is not installed in {conf_dir}")
    return Screened(names, f"the dialplan in {conf_dir}")
