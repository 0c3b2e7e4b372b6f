"""The one place that touches the ``freeswitch`` module.

Inside FreeSWITCH the module exists; in the ``fs-guard`` command and in plain Python
it does not, and fs-guard falls back to stderr and the stock directory layout.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional, Sequence, Tuple

try:  # pragma: no cover - which branch runs depends on the host
    import freeswitch as _fs
except ImportError:  # outside FreeSWITCH
    _fs = None

DEFAULT_CONF_DIR = "/etc/freeswitch"
DEFAULT_LOG_DIR = "/var/log/freeswitch"


def inside_freeswitch() -> bool:
    return _fs is not None


def global_variable(name: str) -> Optional[str]:
    """A FreeSWITCH global variable, or None outside FreeSWITCH or when unset."""
    if _fs is None:
        return None
    value = _fs.getGlobalVariable(name)
    return value or None


def conf_dir() -> str:
    return global_variable("conf_dir") or DEFAULT_CONF_DIR


def log_dir() -> str:
    return global_variable("log_dir") or DEFAULT_LOG_DIR


def console(level: str, message: str) -> None:
    """Write one line to the FreeSWITCH console (stderr outside it).

    ``message`` must already be escaped: it may carry attacker text.
    """
    if _fs is not None:
        _fs.consoleLog(level, message + "\n")
    else:
        sys.stderr.write(f"fs-guard [{level}] {message}\n")


def running() -> bool:
    """False once FreeSWITCH is shutting down (always True outside it)."""
    return _fs is None or bool(_fs.running())


def event_consumer(bindings: Sequence[Tuple[str, str]], queue_len: int) -> Any:
    """An ``EventConsumer`` bound to each (event name, subclass); the caller cleans it up.

    Arguments are positional: the SWIG wrapper takes ``*args`` and no keywords.
    """
    if _fs is None:
        raise RuntimeError("the freeswitch module exists only inside FreeSWITCH")
    (first_name, first_subclass), *rest = bindings
    consumer = _fs.EventConsumer(first_name, first_subclass, queue_len)
    for event_name, subclass in rest:
        if not consumer.bind(event_name, subclass):
            console("err", f"fs-guard: cannot bind to {event_name} {subclass}".rstrip())
    return consumer


def fire_custom(subclass: str, headers: Sequence[Tuple[str, str]]) -> bool:
    """Fire a CUSTOM event (no reservation needed: switch_event_create_subclass_detailed
    never consults the subclass registry); False outside FreeSWITCH."""
    if _fs is None:
        return False
    event = _fs.Event("CUSTOM", subclass)
    for name, value in headers:
        event.addHeader(name, value)
    return bool(event.fire())


def environment_config_path() -> Optional[str]:
    return os.environ.get("FS_GUARD_CONFIG") or None
