"""Other nodes' ban lines into this node's ban log: the ban stream, read by this node.

Every node reads the stream with a consumer group of its own name (``Follower.step``, in a
thread the event hook starts): lines of other nodes are written to its own ban log, with
their original time and `` node=NAME`` added, then acknowledged. Its own lines are skipped,
and a received line is never shared again, so nothing loops. The group remembers, in Redis,
what each node has read: a node that was stopped gets, when it comes back, every line
written meanwhile (as far as the stream still holds them); one that died between writing
and acknowledging checks the end of its ban log before writing those again, so a restart
writes no line twice. An operator's unblock on another node comes the same way.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple

from fs_guard.runtime import offence, state, stats
from fs_guard.runtime.cluster.link import BLOCK_MS, Link
from fs_guard.runtime.cluster.outbox import BATCH, Outbox, stream
from fs_guard.runtime.config import NODE_NAME, Config
from fs_guard.runtime.rules import INTERNAL_ERROR, REASONS

#: Status counters (``fs_guard.status``).
BANS_RECEIVED = "cluster_bans_received"  # other nodes' lines written to this node's ban log
BANS_IGNORED = "cluster_bans_ignored"  # other nodes' lines not written here (trusted, monitor, malformed)

#: Entries whose ids are remembered to drop one added twice (a timed-out request Redis carried out anyway).
SEEN = 10_000
#: How much of the end of the ban log is searched for a line before writing it again after a crash.
TAIL_BYTES = 256 * 1024
#: Longest ban line taken from another node.
MAX_LINE = 8192

_BAN_REASONS = "|".join(reason for reason in REASONS if reason != INTERNAL_ERROR)
_SHARED_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 ip\[([0-9A-Fa-f.:]{2,45})\] "
                          rf"reason=(?:{_BAN_REASONS})(?: [ -~]*)?")


class Follower:
    """This node's reading of the ban stream."""

    def __init__(self, link: Link, outbox: Outbox, last_id: Optional[bytes] = None) -> None:
        self._link = link
        self._outbox = outbox
        self._stream = stream(link)
        self._group_ready = False
        self._seen: "OrderedDict[bytes, None]" = OrderedDict()  # ids of the entries read last
        self.reading_since: Optional[float] = None  # when the follower joined the ban stream
        self.last_id = last_id  # the last stream entry this node has read

    def step(self, stop: threading.Event) -> None:
        """Write the other nodes' new ban lines to this node's ban log (waits at most BLOCK_MS)."""
        link = self._link
        if not link.usable() or link.reader is None:
            stop.wait(BLOCK_MS / 1000)
            return
        node = link.settings.node
        try:
            self._outbox.flush()
            if not self._group_ready:
                self.join_group()
            reply = link.reader.xreadgroup(node, node, {self._stream: ">"}, count=BATCH, block=BLOCK_MS)
            for _, entries in reply or ():
                self._deliver(entries, after_crash=False)
        except Exception as exc:
            if "NOGROUP" in str(exc):  # Redis lost the stream (restart without persistence)
                self._group_ready, self.reading_since = False, None
                return
            link.failed(exc)
            stop.wait(BLOCK_MS / 1000)
            return
        link.health.succeeded()

    def join_group(self) -> None:
        """Make this node's consumer group (a new node starts at the stream's end; a node that
        lost its group in a Redis restart, after the last entry it read), then write what it
        had been given but had not acknowledged when it stopped."""
        reader, node = self._link.reader, self._link.settings.node
        try:
            reader.xgroup_create(self._stream, node, id=self.last_id or "$", mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        while True:
            reply = reader.xreadgroup(node, node, {self._stream: "0"}, count=BATCH)
            entries = reply[0][1] if reply else []
            if not entries:
                break
            self._deliver(entries, after_crash=True)
        self._group_ready, self.reading_since = True, time.time()

    def _deliver(self, entries: Sequence[Tuple[bytes, Optional[Dict[bytes, bytes]]]], after_crash: bool) -> None:
        if not entries:
            return
        config = state.CONFIG.current()
        tail = _tail(config.ban_log_path) if after_crash else ""
        node = self._link.settings.node
        for entry_id, fields in entries:
            self.last_id = entry_id
            origin = (fields or {}).get(b"node", b"").decode("ascii", "replace")
            if not fields or origin == node or self._repeated(fields.get(b"id", b"")):
                continue
            if b"unblock" in fields:
                state.TALLY.unblock(fields[b"unblock"].decode("utf-8", "replace"))
                continue
            line = received_line(fields.get(b"line"), origin, config)
            if line is None:
                state.STATS.add(BANS_IGNORED)
            elif not (after_crash and f"\n{line}\n" in tail):
                if state.BANLOG.write(config.ban_log_path, line):
                    state.STATS.add(BANS_RECEIVED)
                else:
                    state.STATS.add(stats.BAN_LOG_ERRORS)
        self._link.reader.xack(self._stream, node, *[entry_id for entry_id, _ in entries])

    def _repeated(self, unique: bytes) -> bool:
        """An entry added twice: Redis carried out a request its sender had given up on, then the retry."""
        if not unique:
            return False
        if unique in self._seen:
            return True
        self._seen[unique] = None
        if len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        return False


def _tail(path: str) -> str:
    """The end of the ban log, to look for lines written just before a crash."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - TAIL_BYTES))
            return "\n" + handle.read().decode("ascii", "replace")
    except OSError:
        return ""


def received_line(raw: Optional[bytes], origin: str, config: Config) -> Optional[str]:
    """Another node's ban line as this node writes it (`` node=NAME`` added), or None when it is
    not a well-formed ban line or this node would write none for its address (trusted network,
    monitor mode, ``"ban": false``)."""
    if not raw or len(raw) > MAX_LINE or not NODE_NAME.fullmatch(origin):
        return None
    try:
        line = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    found = _SHARED_LINE.fullmatch(line)
    if found is None:
        return None
    address = offence.ban_address(found.group(1))
    if address is None or str(address) != found.group(1):
        return None
    if offence.ban_outcome(config, config.base, address) != offence.BANNED:
        return None
    return f"{line} node={origin}"
