"""The ban log: one escaped line per offence, appended with a single write.

Line format (a contract; see the README)::

    2026-11-25T10:00:00.123+00:00 ip[203.0.113.7] reason=deny_prefix context=public dest="0044123456" ua="friendly-scanner"

Output is pure ASCII: every quoted value has backslash, quote, brackets, control and
non-ASCII characters written as escapes, so a caller can neither break a line nor
put a second ``ip[`` on it.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from typing import Optional, Tuple

from fs_guard.runtime import host
from fs_guard.runtime.ratelimit import RateLimiter

#: Longest value (in characters, before escaping) written for one field.
MAX_FIELD = 256

_PLAIN = re.compile(r"[ !#-Z^-~]*")  # printable ASCII without " [ \ ]
_TOKEN = re.compile(r"[A-Za-z0-9_.:@+-]+")
_ESCAPES = {i: f"\\x{i:02x}" for i in range(0x20)}
_ESCAPES.update({0x7F: "\\x7f", ord("\\"): "\\\\", ord('"'): '\\"', ord("["): "\\x5b", ord("]"): "\\x5d"})
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def escape(value: str, limit: int = MAX_FIELD) -> str:
    """``value`` as printable ASCII with nothing a log reader could mistake for syntax."""
    cut = len(value) > limit
    if cut:
        value = value[:limit]
    if not _PLAIN.fullmatch(value):
        value = value.translate(_ESCAPES).encode("ascii", "backslashreplace").decode("ascii")
    return value + "..." if cut else value


def quoted(value: Optional[str]) -> str:
    return f'"{escape(value)}"' if value else '""'


@functools.lru_cache(maxsize=256)
def token(value: Optional[str]) -> str:
    """A name such as a context: bare when it is a plain token, else quoted."""
    return value if value and len(value) <= 64 and _TOKEN.fullmatch(value) else quoted(value)


class _Clock:
    """ISO-8601 UTC timestamps with milliseconds, formatted at most once per millisecond.

    Each cache is one tuple, swapped whole, so threads never see half an update.
    """

    def __init__(self) -> None:
        self._second: Tuple[int, str] = (-1, "")
        self._milli: Tuple[int, str] = (-1, "")

    def stamp(self, now: Optional[float] = None) -> str:
        milli = int((time.time() if now is None else now) * 1000)
        cached, text = self._milli
        if milli == cached:
            return text
        second, rest = divmod(milli, 1000)
        cached, prefix = self._second
        if second != cached:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, prefix)
        text = f"{prefix}.{rest:03d}+00:00"
        self._milli = (milli, text)
        return text


_clock = _Clock()


def line(ip: str, reason: str, fields: str, now: Optional[float] = None) -> str:
    """One ban-log line without its newline; ``ip`` must already be validated and ``fields``
    formatted by ``offence.call_fields`` or ``offence.registration_fields``."""
    return f"{_clock.stamp(now)} ip[{ip}] reason={reason} {fields}"


class BanLog:
    """Appends lines to the ban log, following logrotate's rename+create and copytruncate.

    One lock serialises writers so lines never interleave; each line is one ``write``
    on an ``O_APPEND`` descriptor. Before a write the path is checked with one ``stat``:
    a different inode means the file was rotated, and it is reopened.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: Optional[int] = None
        self._path = ""
        self._identity: Tuple[int, int] = (-1, -1)
        self._errors = RateLimiter(1.0)
        self.last_error: Optional[str] = None

    def write(self, path: str, line: str) -> bool:
        """Append ``line``; False (and a rate-limited console error) when it cannot be written."""
        data = (line + "\n").encode("ascii", "backslashreplace")
        with self._lock:
            try:
                written = os.write(self._descriptor(path), data)
                if written != len(data):
                    raise OSError(f"short write ({written} of {len(data)} bytes)")
                return True
            except OSError as exc:
                self._close()
                self._failed(path, exc)
                return False

    def close(self) -> None:
        with self._lock:
            self._close()

    def _descriptor(self, path: str) -> int:
        if self._fd is not None and path == self._path:
            try:
                st = os.stat(path)
                if (st.st_ino, st.st_dev) == self._identity:
                    return self._fd
            except FileNotFoundError:
                pass
        self._close()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        st = os.fstat(fd)
        self._fd, self._path, self._identity = fd, path, (st.st_ino, st.st_dev)
        return fd

    def _close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def _failed(self, path: str, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        self.last_error = f"{path}: {reason}"
        suppressed = self._errors.allow()
        if suppressed is not None:
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            host.console("err", f"fs-guard: cannot write ban log {escape(path, 4096)}: {escape(reason)}{more}")
