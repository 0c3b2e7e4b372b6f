"""Rule decision: median µs per number, shipped config and 10,000 + 10,000 prefixes."""

from __future__ import annotations

import json
import os
import random
from typing import List

from harness import ROOT, Row, interleaved
from naive import naive_decide

from fs_guard.runtime.config import compile_config
from fs_guard.runtime.rules import CallFacts, decide

SHIPPED = os.path.join(ROOT, "freeswitch_conf", "fs_guard.json")


def numbers(seed: int = 7) -> List[CallFacts]:
    """A mix like a public context sees: extensions, national, international, junk."""
    rnd = random.Random(seed)
    out = []
    for _ in range(2000):
        kind = rnd.random()
        if kind < 0.4:
            number = str(rnd.randint(1000, 1999))
        elif kind < 0.6:
            number = "0" + str(rnd.randint(10**8, 10**9))
        elif kind < 0.8:
            number = rnd.choice(["00", "011", "+"]) + str(rnd.randint(10**9, 10**11))
        else:
            number = str(rnd.randint(10**5, 10**15))
        ua = rnd.choice(["Yealink SIP-T46S", "friendly-scanner", "Grandstream GXP2170", None])
        out.append(CallFacts(number, "public", "203.0.113.7", ua))
    return out


def _shipped_section() -> dict:
    if os.path.exists(SHIPPED):
        with open(SHIPPED, encoding="utf-8") as handle:
            return json.load(handle)["fail2ban"]
    return {}


def _big_section() -> dict:
    rnd = random.Random(11)
    deny = sorted({str(rnd.randint(10, 10**rnd.randint(3, 8))) for _ in range(12000)})[:10000]
    allow = sorted({str(rnd.randint(10, 10**rnd.randint(2, 7))) for _ in range(12000)})[:10000]
    return {"deny_prefix": deny, "allow_prefix": allow, "destination_number_max_len": 16,
            "deny_user_agent": ["friendly-scanner", "sipvicious", "sipcli"]}


def run(rounds: int = 30) -> List[Row]:
    facts = numbers()
    rows = []
    for label, section, target in [
        ("shipped config", _shipped_section(), 2.0),
        ("10,000 deny + 10,000 allow prefixes", _big_section(), 5.0),
    ]:
        rules = compile_config(section, None).base
        merged = {**{"deny_prefix": ["00", "+"]}, **section}

        def fast() -> int:
            for f in facts:
                decide(rules, f)
            return len(facts)

        def naive() -> int:
            for f in facts:
                naive_decide(merged, f.number, f.user_agent)
            return len(facts)

        result = interleaved({"fast": fast, "naive": naive}, rounds)
        rows.append(Row(f"rule decision, {label}", result["fast"], "µs/number", f"≤ {target:g} µs",
                        result["fast"] <= target, f"linear scan: {result['naive']:.2f} µs/number"))
    return rows


if __name__ == "__main__":
    from harness import table

    print(table(run()))
