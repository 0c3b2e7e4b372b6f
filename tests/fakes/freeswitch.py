"""A fake of FreeSWITCH's ``freeswitch`` module (mod_python3's SWIG shim).

Public names and signatures are exactly the real module's (camelCase; see
shared/docs/freeswitch.md), so code that passes against this fake runs inside
FreeSWITCH. Parameter names are those of the SWIG wrapper mod_python3 ships
(src/mod/languages/mod_python3/freeswitch.py); where that wrapper takes ``*args``
(constructors, ``EventConsumer.bind``, ``Session.hangup``) the parameters are
positional-only, named as in switch_cpp.h, because the real one accepts no keywords.
Everything a test inspects or controls is underscore-private and is reached through
``tests/fakes/fsctl.py``; nothing here adds public API. tests/test_fake_freeswitch.py
checks all of this.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid as _uuid

_lock = threading.Lock()
_globals = {}
_log = []  # (level, message) in the order logged
_running = threading.Event()
_running.set()
_consumers = []  # live EventConsumer objects


def consoleLog(level_str, msg):
    with _lock:
        _log.append((level_str, msg))


def consoleCleanLog(msg):
    with _lock:
        _log.append(("clean", msg))


def getGlobalVariable(var_name):
    with _lock:
        return _globals.get(var_name)


def setGlobalVariable(var_name, var_val):
    with _lock:
        _globals[var_name] = var_val


def running():
    return _running.is_set()


def msleep(ms):
    time.sleep(ms / 1000.0)


class Session:
    """A channel at dialplan time: variables in, hangup cause and log lines out."""

    def __init__(self, uuid=None, a_leg=None, /):
        self.uuid = uuid or str(_uuid.uuid4())
        self._variables = {"uuid": self.uuid}
        self._cause = None
        self._log = []

    def getVariable(self, var):
        return self._variables.get(var)

    def setVariable(self, var, val):
        self._variables[var] = val

    def hangup(self, cause="normal_clearing", /):
        if self._cause is None:
            self._cause = str(cause).upper()

    def hangupCause(self):
        return self._cause or "NONE"

    def ready(self):
        return self._cause is None

    def answered(self):
        return False

    def execute(self, app, data=None):
        self._log.append(("execute", f"{app} {data or ''}".strip()))

    def consoleLog(self, level_str, msg):
        self._log.append((level_str, msg))
        consoleLog(level_str, msg)


class Event:
    def __init__(self, type, subclass_name=None, /):
        self._type = type
        self._subclass = subclass_name
        self._headers = []
        self._body = None
        if subclass_name:
            self._headers.append(("Event-Subclass", subclass_name))
        self._headers.append(("Event-Name", type))

    def getHeader(self, header_name):
        for name, value in self._headers:
            if name.lower() == header_name.lower():
                return value
        return None

    def addHeader(self, header_name, value):
        self._headers.append((header_name, value))
        return True

    def delHeader(self, header_name):
        self._headers = [(n, v) for n, v in self._headers if n.lower() != header_name.lower()]
        return True

    def getBody(self):
        return self._body

    def addBody(self, value):
        self._body = (self._body or "") + value
        return True

    def getType(self):
        return self._type

    def serialize(self, format=None):
        if format == "json":
            import json

            return json.dumps(dict(self._headers))
        return "".join(f"{name}: {value}\n" for name, value in self._headers)

    def fire(self):
        with _lock:
            targets = list(_consumers)
        for consumer in targets:
            consumer._offer(self)
        return True


class EventConsumer:
    """A bounded queue of the events it is bound to, as in switch_cpp.cpp.

    ``pop(block, timeout)`` waits at most ``timeout`` ms (forever when 0) without
    holding the GIL; a full queue drops new events and logs "Cannot queue any more
    events"; after ``cleanup()`` it is unbound and ``pop`` returns None.
    """

    def __init__(self, event_name=None, subclass_name="", len=5000, /):
        self._bindings = set()
        self._queue = collections.deque()
        self._queue_len = len
        self._cond = threading.Condition()
        self._ready = True
        self._dropped = 0
        self._waiting = 0  # threads blocked in pop() on an empty queue
        with _lock:
            _consumers.append(self)
        if event_name:
            self.bind(event_name, subclass_name)

    def bind(self, event_name, subclass_name="", /):
        if not self._ready:
            return 0
        self._bindings.add((event_name, subclass_name or ""))
        return 1

    def pop(self, block=0, timeout=0):
        with self._cond:
            if self._ready and not self._queue and block:
                self._waiting += 1
                try:
                    self._cond.wait_for(lambda: self._queue or not self._ready, timeout / 1000.0 if timeout > 0 else None)
                finally:
                    self._waiting -= 1
            return self._queue.popleft() if self._ready and self._queue else None

    def cleanup(self):
        with _lock:
            if self in _consumers:
                _consumers.remove(self)
        with self._cond:
            self._ready = False
            self._bindings.clear()
            self._queue.clear()
            self._cond.notify_all()

    def _offer(self, event):
        wanted = (event.getType(), event._subclass or "") in self._bindings or (
            (event.getType(), "") in self._bindings and event.getType() != "CUSTOM"
        ) or ("ALL", "") in self._bindings
        if not wanted:
            return
        with self._cond:
            full = len(self._queue) >= self._queue_len
            if full:
                self._dropped += 1
            else:
                self._queue.append(event)
                self._cond.notify()
        if full:
            consoleLog("err", "Cannot queue any more events.....\n")


class API:
    def __init__(self, s=None):
        self._session = s

    def execute(self, command, data=None):
        with _lock:
            _log.append(("api", f"{command} {data or ''}".strip()))
        return ""

    def executeString(self, command):
        cmd, _, data = command.partition(" ")
        return self.execute(cmd, data)

    def getTime(self):
        return str(int(time.time() * 1000000))


class Stream:
    def __init__(self, s=None, /):
        self._chunks = []

    def write(self, data):
        self._chunks.append(data)

    def raw_write(self, data, len):
        self._chunks.append(data[:len])

    def get_data(self):
        return "".join(self._chunks)

    def read(self, len):
        return ""
