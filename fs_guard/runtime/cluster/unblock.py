"""``fs_guard.status unblock KEY`` in Redis: lift the shared blocks, forget the shared counts,
and tell the other nodes (through the ban stream) to lift theirs."""

from __future__ import annotations

import re
from typing import List, Tuple

from fs_guard.runtime.cluster import outbox
from fs_guard.runtime.cluster.link import Link

#: How long a lifted block cannot be put back by a node that still holds it (ms): the other
#: nodes hear of the unblock (the ban stream) well within it.
UNBLOCKED_MS = 60_000


def lift(link: Link, key: str) -> List[Tuple[str, str]]:
    """Lift the shared blocks of ``key`` as ``Tally.unblock`` does (and forget its shared
    counts), and tell the other nodes to lift theirs; returns (identity, limit) lifted."""
    client = link.client
    if client is None:
        raise RuntimeError("not connected to Redis yet")
    prefix = link.settings.key_prefix
    lifted = []
    marks = {key} if key.startswith(("ip:", "account:")) else {"ip:" + key, "account:" + key}
    start = f"{prefix}block:"
    for name in client.scan_iter(match=_glob(start) + "*", count=1000):
        identity = name.decode("utf-8", "replace")[len(start):]
        value = client.get(name)
        if value is None:
            continue
        _, limit, _, blocked_key = value.decode("utf-8", "replace").split("|", 3)
        if key in (identity, identity.split(":", 1)[1], blocked_key):
            client.delete(name)
            lifted.append((identity, limit))
            marks.add(identity)
            account = identity.split(":", 1)[1]
            for kind in ("calls", "numbers"):
                for tail in (_glob(blocked_key), _glob(account), _glob(account + "/") + "*"):
                    for window in client.scan_iter(match=f"{_glob(prefix + kind)}:*:*:{tail}", count=1000):
                        client.delete(window)
    for identity in marks:  # nodes still holding the block must not put it back before they hear
        client.set(f"{prefix}unblocked:{identity}", "1", px=UNBLOCKED_MS)
    outbox.add(client, outbox.stream(link), {"node": link.settings.node, "unblock": key, "id": link.unique()})
    return lifted


def _glob(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
