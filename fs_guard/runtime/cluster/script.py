"""The counting script (``count.lua``): its arguments and its reply as named records.

The one place that knows where each value sits in KEYS, ARGV and the reply (the script's
header says the same from its side). Pure: it neither talks to Redis nor reads the clock.
"""

from __future__ import annotations

import os
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

SCRIPT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "count.lua")

with open(SCRIPT_PATH, encoding="utf-8") as _handle:
    LUA = _handle.read()


class Metric(NamedTuple):
    """How the script counts one metric of one check."""

    top: int  # the highest threshold: keeps this many x 4 entries; -1: not counted
    critical: int  # a count above it rejects the call; -1: never rejects


NOT_COUNTED = Metric(-1, -1)


class CheckArgs(NamedTuple):
    """One limit applied to the call."""

    limit: str
    by: str
    key: str
    window_us: int
    calls: Metric
    distinct: Metric
    concurrent: Metric
    block_for_us: int  # 0: a critical hit sets no block
    identity: str  # what its block locks ("ip:ADDR", "account:USER@DOMAIN")
    floors: Tuple[int, int, int]  # the node's own counts (calls, distinct, concurrent): no count is below them
    countries: bool = False  # the distinct count is of destination countries, not numbers


class HeldBlock(NamedTuple):
    """A block the node holds and Redis may have lost: the script puts it back, unless an
    operator lifted it (its ``unblocked`` mark)."""

    identity: str
    left_us: int
    limit: str
    by: str
    key: str


class CallArgs(NamedTuple):
    """One screened call."""

    now_us: Optional[int]  # None: Redis's own clock (TIME)
    number: str
    member: str  # this call in the calls windows: unique across nodes and runs
    slot: str  # its call id in the concurrent-calls sets; "": concurrent calls not counted
    enforce: bool
    valid: str  # ",LIMIT:BY,...": the limits configured (a block of any other is stale)
    slot_lifetime_us: int
    identities: Sequence[str]  # whose blocks are looked up (and that order is the reply's)
    held: Optional[HeldBlock]
    checks: Sequence[CheckArgs]
    country: str = ""  # the call's destination country ("": not classified)


class Blocked(NamedTuple):
    """The call's identity ``identity`` (an index into ``CallArgs.identities``) is blocked."""

    identity: int
    until_us: int
    limit: str
    key: str
    now_us: int


class Counted(NamedTuple):
    """The call was counted (accepted), or rejected by check ``rejected``."""

    rejected: int  # the rejecting check's index; -1: accepted
    block_until_us: int  # the block the rejection set; 0: none
    now_us: int
    counts: Tuple[Tuple[int, int, int], ...]  # per check: calls, distinct, concurrent (-1: not counted)


def _windows(prefix: str, check: CheckArgs) -> Tuple[str, str, str]:
    where = f"{check.limit}:{check.by}:{check.key}"
    return f"{prefix}calls:{where}", f"{prefix}numbers:{where}", f"{prefix}up:{where}"


def encode(prefix: str, call: CallArgs) -> Tuple[List[str], List[str]]:
    """KEYS and ARGV of the script for ``call``."""
    identities = call.identities
    blockable = list(identities) + [c.identity for c in call.checks if c.identity not in identities]
    held = call.held
    keys: List[str] = []
    args = ["" if call.now_us is None else str(call.now_us), call.number, call.member, call.slot,
            str(len(call.checks)), str(len(identities)), "1" if call.enforce else "0", call.valid,
            str(call.slot_lifetime_us)]
    if held is not None:
        args += [str(blockable.index(held.identity) + 1), str(held.left_us), f"{held.limit}|{held.by}|{held.key}"]
    else:
        args += ["0", "0", ""]
    for check in call.checks:
        keys += _windows(prefix, check)
        values = (check.window_us, *check.calls, *check.distinct, *check.concurrent, check.block_for_us,
                  blockable.index(check.identity) + 1, *check.floors, 1 if check.countries else 0)
        args += [",".join(map(str, values)), f"{check.limit}|{check.by}|{check.key}"]
    args.append(call.country)
    keys += [f"{prefix}block:{identity}" for identity in blockable]
    if held is not None:
        keys.append(f"{prefix}unblocked:{held.identity}")
    return keys, args


def slot_keys(prefix: str, call: CallArgs) -> List[str]:
    """The concurrent-calls sets that hold the call (to free at its hang-up)."""
    return [_windows(prefix, check)[2] for check in call.checks if check.concurrent.top >= 0]


def decode(reply: Sequence, checks: int) -> Union[Blocked, Counted]:
    """The script's reply for a call of ``checks`` checks."""
    if reply[0] == 1:
        until_us, limit, _, key = reply[2].decode("utf-8", "replace").split("|", 3)
        return Blocked(int(reply[1]) - 1, int(until_us), limit, key, int(reply[3]))
    counts = tuple((int(reply[4 + 3 * i]), int(reply[5 + 3 * i]), int(reply[6 + 3 * i])) for i in range(checks))
    return Counted(int(reply[1]) - 1 if reply[0] == 2 else -1, int(reply[2]), int(reply[3]), counts)
