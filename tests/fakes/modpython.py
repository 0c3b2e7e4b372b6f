"""How mod_python3 invokes Python, reproduced for tests.

For ``<action application="python" data="MODULE ARGS"/>`` mod_python3 splits ``data``
on the first space, imports MODULE and then RELOADS it (the leaf module is re-executed
on every call), calls ``handler(session, args)``, logs an exception at ERR with its
traceback and lets the dialplan go on; ``SystemExit`` is ignored.
"""

from __future__ import annotations

import importlib
import traceback
from typing import Any

import freeswitch


def _split(data: str):
    name, _, args = data.partition(" ")
    name, _, func = name.partition("::")
    return name, func, args


def _call(name: str, func: str, *call_args: Any) -> Any:
    try:
        module = importlib.import_module(name)
        module = importlib.reload(module)
    except Exception:
        freeswitch.consoleLog("err", f"Error importing module\n{traceback.format_exc()}")
        return None
    try:
        return getattr(module, func)(*call_args)
    except SystemExit:
        return None
    except Exception:
        freeswitch.consoleLog("err", traceback.format_exc())
        return None


def run_app(data: str, session: Any) -> None:
    """The ``python`` dialplan application."""
    name, func, args = _split(data)
    _call(name, func or "handler", session, args)


def run_api(data: str, session: Any = "na") -> str:
    """``fs_cli -x "python DATA"``: returns what the function wrote to its stream."""
    name, func, args = _split(data)
    stream = freeswitch.Stream()
    _call(name, func or "fsapi", session, stream, {}, args)
    return stream.get_data()
