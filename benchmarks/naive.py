"""The naive implementations the design is measured against (never used by fs-guard).

- rules: a linear scan of the prefix lists;
- config: read, parse and validate the file on every call;
- ban log: open the file, append one line, close it, per line.
"""

from __future__ import annotations

import json
from typing import List, Optional

from fs_guard.runtime.config import parse_config


def naive_decide(section: dict, number: Optional[str], user_agent: Optional[str]) -> Optional[str]:
    if not number:
        return "empty_number"
    if len(number) > section.get("destination_number_max_len", 12):
        return "too_long"
    chars = section.get("allowed_characters")
    if chars and any(c not in chars for c in number):
        return "bad_characters"
    for prefix in section.get("deny_prefix", []):
        if number.startswith(prefix):
            return "deny_prefix"
    allow: List[str] = section.get("allow_prefix", [])
    if allow and not any(number.startswith(prefix) for prefix in allow):
        return "not_allowed_prefix"
    if user_agent:
        folded = user_agent.lower()
        if any(ua.lower() in folded for ua in section.get("deny_user_agent", [])):
            return "scanner_user_agent"
    return None


def naive_load(path: str):
    """What a guard without a cache does on every call."""
    with open(path, "rb") as handle:
        return parse_config(handle.read(), path)


def naive_append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def section_of(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)["fail2ban"]
