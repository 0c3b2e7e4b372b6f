"""Where the FreeSWITCH and fail2ban files shipped with fs-guard are at run time.

In a wheel they are package data (``fs_guard/freeswitch_conf``, ``fs_guard/fail2ban``:
setup.cfg maps the repository's top-level directories there). In a source checkout or
an editable install they are the repository's own ``freeswitch_conf/`` and ``fail2ban/``.
"""

from __future__ import annotations

import os

FREESWITCH = "freeswitch_conf"
FAIL2BAN = "fail2ban"

#: The ``fs_guard`` package directory (this module is in ``fs_guard/fsconf``).
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BundleMissing(Exception):
    """fs-guard was installed without its data files."""


def path(bundle: str, relative: str) -> str:
    """The shipped file ``relative`` (POSIX path) of ``bundle`` (FREESWITCH or FAIL2BAN)."""
    parts = relative.split("/")
    candidates = [os.path.join(base, bundle, *parts) for base in (_PACKAGE, os.path.dirname(_PACKAGE))]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise BundleMissing(f"fs-guard's {bundle}/{relative} is missing (looked at {', '.join(candidates)}): reinstall fs-guard")


def read(bundle: str, relative: str) -> bytes:
    with open(path(bundle, relative), "rb") as handle:
        return handle.read()
