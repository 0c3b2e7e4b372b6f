"""How mod_python3 invokes Python, reproduced for tests.

For ``<action application="python" data="MODULE ARGS"/>`` mod_python3 splits ``data``
on the first space, imports MODULE and then RELOADS it (the leaf module is re-executed
on every call), calls ``handler(session, args)``, logs an exception at ERR with its
traceback and lets the dialplan go on; ``SystemExit`` is ignored. A ``startup-script``
(or ``pyrun``) does the same with ``runtime(args)`` in a thread of its own, and at
unload mod_python3 injects ``SystemExit`` into each such thread still running and
waits about 10 s (mod_python3.c: py_thread_run, mod_python3_shutdown).
"""

from __future__ import annotations

import ctypes
import importlib
import threading
import traceback
from typing import Any, List

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


class StartupThread:
    """One ``runtime(args)`` thread, as mod_python3's py_thread starts it."""

    def __init__(self, data: str) -> None:
        name, func, args = _split(data)
        self.thread = threading.Thread(
            target=_call, args=(name, func or "runtime", args), name=f"py_thread {data}", daemon=True
        )
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def inject_system_exit(self) -> None:
        """What mod_python3 does at unload: PyThreadState_SetAsyncExc(thread, SystemExit)."""
        ident = self.thread.ident
        assert ident is not None
        changed = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(SystemExit))
        assert changed <= 1, "PyThreadState_SetAsyncExc hit more than one thread"

    def join(self, timeout: float) -> bool:
        """True when the thread has ended within ``timeout`` seconds."""
        self.thread.join(timeout)
        return not self.thread.is_alive()


_startup_threads: List[StartupThread] = []


def run_startup(data: str) -> StartupThread:
    """``<param name="startup-script" value="DATA"/>`` or ``fs_cli -x "pyrun DATA"``."""
    started = StartupThread(data)
    _startup_threads.append(started)
    return started


def unload(wait: float = 10.0) -> List[StartupThread]:
    """Unload mod_python3: SystemExit into every live startup thread; returns those still alive after ``wait``."""
    alive = [t for t in _startup_threads if t.alive]
    _startup_threads.clear()
    for started in alive:
        started.inject_system_exit()
    return [started for started in alive if not started.join(wait)]
