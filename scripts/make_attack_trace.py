#!/usr/bin/env python3
"""Make the bundled attack trace, fs_guard/data/attack-trace.jsonl.gz.

One day of a public FreeSWITCH's traffic, generated (no real traffic, no real
addresses: only the documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24
and 2001:db8::/32):

- legitimate: an office's phones (ten accounts, 1000@pbx.example to 1009@pbx.example,
  two on each phone's address) calling extensions, national numbers and, a few times a
  day, numbers abroad; a SIP trunk delivering DID calls; a phone that mistypes its
  password twice;
- scanners: a few addresses dialling 00, 011 and + prefixes and long numbers into the
  public context, with scanner user agents; one probing short extensions; one slow
  enough to stay under fail2ban's threshold;
- password guessing: register failures (REGISTER and INVITE) in bursts;
- a stolen credential: at night, from an address never seen before, the office's account
  1003@pbx.example dials dozens of different numbers in one international premium range
  (Thuraya, 0088216...) in three bursts, in the ``default`` context, each call kept up for
  many minutes: revenue-share fraud that no static rule of an office calling abroad stops;
- a hacked phone's account (1006@pbx.example), used from outside in the evening, dialling
  UK premium-rate numbers in national format (09098...): the number type rule rejects them;
- another stolen account (1008@pbx.example) calling one number in each of eight countries in
  twenty minutes, some on public IRSF lists: the distinct-countries limit alerts.

The office is in London: it dials London numbers in national format (020...) and, a few
times a day, geographic numbers abroad after 00; none is premium rate or shared cost.

Calls carry their ``duration`` and, when authenticated, their ``account``. Deterministic:
a fixed seed and gzip without a timestamp give the same bytes every run. Also writes the
same traffic as CSV, as a FreeSWITCH log or as mod_cdr_csv's CDR CSV (``--format``), at
any ``--scale`` (N: N offices of the same PBX, pbx.example, pbx1.example ..., each with
its trunk and its stolen account, and each attack N times), for tests and the replay
benchmark.

    python3 scripts/make_attack_trace.py                 # rewrite the bundled trace
    python3 scripts/make_attack_trace.py --format fslog --scale 50 -o /tmp/freeswitch.log
"""

from __future__ import annotations

import argparse
import csv
import gzip
import heapq
import io
import json
import os
import random
import sys
import time
import uuid
from typing import Dict, Iterator, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "fs_guard", "data", "attack-trace.jsonl.gz")
SEED = 6
START = 1795824000.0  # 2026-11-28T00:00:00Z
DAY = 86400.0
CSV_FIELDS = ("time", "kind", "ip", "context", "number", "ua", "user", "profile", "host", "type", "account", "uuid",
              "duration")
SERVER = "198.51.100.1"
DOMAIN = "pbx.example"
STOLEN = "1003"  # the office account whose password is stolen
FRAUDSTER = "203.0.113.150"
PREMIUM_PUMPER, PUMPER = "1006", "203.0.113.160"  # the hacked phone's account, and where it is used from
FANOUT_ACCOUNT, FANOUT_FROM = "1008", "203.0.113.170"  # the account that fans out over countries

Event = Dict[str, object]


class _Day:
    """Adds one actor's attempts at random times."""

    def __init__(self, rng: random.Random, events: List[Event]) -> None:
        self.rng = rng
        self.events = events

    def call(self, at: float, ip: str, context: str, number: str, ua: Optional[str], duration: float = 0,
             account: Optional[str] = None) -> None:
        """A call; ``duration`` 0 for one rejected at once (a scanner's), ``account`` when authenticated."""
        self.events.append({"time": at, "ip": ip, "context": context, "number": number, "ua": ua,
                            "account": account, "duration": duration})

    def failure(self, at: float, ip: str, user: str, ua: Optional[str], kind: str = "REGISTER",
                profile: str = "internal") -> None:
        self.events.append({"time": at, "kind": "register_failure", "ip": ip, "user": user, "ua": ua,
                            "profile": profile, "host": SERVER, "type": kind})

    def times(self, count: int, start: float, end: float) -> List[float]:
        return sorted(self.rng.uniform(start, end) for _ in range(count))

    def burst(self, count: int, start: float, gap: tuple) -> Iterator[float]:
        at = start
        for _ in range(count):
            at += self.rng.uniform(*gap)
            yield at


def _international(rng: random.Random, prefix: str) -> str:
    country = rng.choice(["252", "53", "371", "232", "881", "882", "44", "972", "216", "7"])
    return prefix + country + "".join(rng.choice("0123456789") for _ in range(rng.randint(6, 10)))


def _london(value: int) -> str:
    """A London number in national format (020 3/7/8 and seven digits: valid, geographic)."""
    return f"020{'378'[value % 3]}{value // 3 % 10 ** 7:07d}"


#: Where the office calls abroad: a geographic range of each country, after 00.
_ABROAD = {"0044": "0044207", "0033": "00331", "0049": "004930", "0039": "003906"}


def _abroad(prefix: str, value: int) -> str:
    """A valid geographic number abroad (London, Paris, Berlin, Rome): never premium or shared cost."""
    head = _ABROAD[prefix]
    return head + f"{value % 10 ** 7:07d}" + ("" if prefix == "0044" else str(value // 10 ** 7 % 10))


#: The fan-out: one number in each of eight countries, four of them on public IRSF lists
#: (docs/destinations.md): Latvia, Cuba, the Dominican Republic, Slovenia.
FANOUT_NUMBERS = ["0037163123456", "005371234567", "0018092345678", "0038612345678", "00212520123456",
                  "0094112345678", "0097122345678", "00966112345678"]


def generate(seed: int = SEED, scale: int = 1) -> List[Event]:
    """The trace's events, in time order; ``scale`` offices and ``scale`` times each attack."""
    rng = random.Random(seed)
    events: List[Event] = []
    day = _Day(rng, events)
    phones = ["Yealink SIP-T46S 66.86.0.15", "Grandstream GXP2170 1.0.11.23", "Zoiper rv2.10.20.2"]
    for n in range(scale):  # at a larger scale, more offices (tenants of the PBX), each with its trunk
        domain = DOMAIN if n == 0 else f"pbx{n}.example"
        # The office: ten accounts, two on each phone's address, each with its phone.
        office = [(f"{1000 + i}@{domain}", f"198.51.100.{10 + i % 5}", phones[i % 3]) for i in range(10)]
        busy = {account: 0.0 for account, _, _ in office}  # a person makes one call at a time
        hours = [(at, False) for at in day.times(900, START + 7 * 3600, START + 19 * 3600)]  # office hours
        hours += [(at, True) for at in day.times(24, START + 8 * 3600, START + 18 * 3600)]  # a few abroad
        for at, abroad in sorted(hours):
            account, ip, ua = rng.choice([person for person in office if busy[person[0]] <= at] or office)
            if abroad:
                number = _abroad(rng.choice(["0044", "0033", "0049", "0039"]), rng.randint(10 ** 8, 10 ** 10 - 1))
                duration = rng.randint(60, 900)
            elif rng.random() < 0.5:
                number, duration = str(rng.randint(1000, 1019)), rng.randint(10, 180)
            else:
                number, duration = _london(rng.randint(2 * 10 ** 9, 10 ** 10 - 1)), rng.randint(30, 480)
            busy[account] = max(busy[account], at + duration)
            day.call(at, ip, "default", number, ua, duration, account)
        trunk = "198.51.100.200" if n == 0 else f"2001:db8:5::{n:x}"
        for at in day.times(700, START, START + DAY):  # DID calls from the trunk
            day.call(at, trunk, "public", f"4420794601{rng.randint(0, 99):02d}", "Sonus SBC 1.0", rng.randint(30, 600))
    for n in range(scale):  # a phone with a stale password: two failures, then it is fixed
        for at in day.burst(2, START + 9 * 3600 + n * 60, (20, 40)):
            day.failure(at, "198.51.100.23", "1007", "Yealink SIP-T46S 66.86.0.15")

    # Scanners: bursts of international and long numbers into the public context.
    for ip, ua, count, start, gap in [
        ("203.0.113.66", "friendly-scanner", 600, 2 * 3600, (0.2, 1.5)),
        ("203.0.113.199", "sipcli/v1.8", 450, 11 * 3600, (0.5, 3.0)),
        ("2001:db8:bad::5", "sipvicious", 300, 16 * 3600, (0.3, 2.0)),
    ]:
        for n in range(scale):
            for at in day.burst(count, START + start + n * 2400, gap):
                number = _international(rng, rng.choice(["00", "00", "011", "+", "9011", "900"]))
                day.call(at, ip, "public", number, ua)
    for n in range(scale):  # probing extensions: short numbers, only the user agent gives it away
        for at in day.burst(250, START + 4 * 3600 + n * 1800, (0.5, 2.0)):
            day.call(at, "203.0.113.23", "public", str(rng.randint(100, 1099)), "VaxSIPUserAgent/3.1")
    for n in range(scale):  # low and slow: 3 attempts per findtime, never banned
        for at in day.burst(60, START + 13 * 3600 + n * 5000, (61, 80)):
            day.call(at, "203.0.113.45", "public", _international(rng, "+"), "Asterisk PBX 16.2.1")

    # Password guessing.
    for ip, ua, count, start, gap, kind in [
        ("192.0.2.77", "friendly-scanner", 300, 1 * 3600, (0.5, 3.0), "REGISTER"),
        ("2001:db8:f00d::23", "PolycomVVX-VVX_400-UA/5.9.0", 150, 20 * 3600, (1.0, 4.0), "REGISTER"),
        ("192.0.2.140", "sipcli/v1.8", 120, 6 * 3600, (0.5, 2.0), "INVITE"),
    ]:
        for n in range(scale):
            for at in day.burst(count, START + start + n * 2000, gap):
                day.failure(at, ip, str(rng.randint(100, 9999)), ua, kind)

    # A stolen credential: the office's account, from a new address, pumping premium numbers.
    for n in range(scale):
        stolen = f"{STOLEN}@{DOMAIN if n == 0 else f'pbx{n}.example'}"
        for start, count in ((1.5 * 3600, 25), (2.25 * 3600, 30), (3 * 3600, 25)):
            for at in day.burst(count, START + start + n * 60, (1.0, 2.5)):
                number = "0088216" + "".join(rng.choice("0123456789") for _ in range(7))
                day.call(at, FRAUDSTER, "default", number, "MicroSIP/3.21.3", rng.randint(600, 2400), stolen)

    # A hacked desk phone's account, used from outside, dials UK premium-rate numbers in national
    # format (09...): no prefix rule of an office that calls abroad sees it; the number type does.
    for n in range(scale):
        hacked = f"{PREMIUM_PUMPER}@{DOMAIN if n == 0 else f'pbx{n}.example'}"
        for at in day.burst(40, START + 21 * 3600 + n * 900, (4.0, 15.0)):
            number = "09098" + "".join(rng.choice("0123456789") for _ in range(6))
            day.call(at, PUMPER, "default", number, "Yealink SIP-T46S 66.86.0.15", 0, hacked)

    # A stolen account fans out over eight countries in twenty minutes, one call each.
    for n in range(scale):
        stolen = f"{FANOUT_ACCOUNT}@{DOMAIN if n == 0 else f'pbx{n}.example'}"
        for at, number in zip(day.burst(len(FANOUT_NUMBERS), START + 23 * 3600 + n * 1800, (60, 240)),
                              FANOUT_NUMBERS):
            day.call(at, FANOUT_FROM, "default", number, "Zoiper rv2.10.20.2", rng.randint(120, 900), stolen)

    events.sort(key=lambda event: event["time"])
    return events


def _iso(seconds: float) -> str:
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((seconds - whole) * 1000):03d}Z"


def to_jsonl(events: List[Event]) -> Iterator[str]:
    for event in events:
        record = {"time": _iso(float(event["time"]))}  # type: ignore[arg-type]
        record.update((key, value) for key, value in event.items() if key != "time" and value is not None)
        yield json.dumps(record, separators=(",", ":")) + "\n"


def to_csv(events: List[Event]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for event in events:
        row = dict(event, time=_iso(float(event["time"])))  # type: ignore[arg-type]
        writer.writerow(["" if row.get(name) is None else row[name] for name in CSV_FIELDS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _local(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(at)))


def _calls_and_ends(events: List[Event], seed: int) -> Iterator[Tuple[str, float, Event, str]]:
    """Each attempt ("start", with a uuid for a call) and, in time order among them, each
    call's hang-up ("end"): what FreeSWITCH logs as it happens."""
    rng = random.Random(seed)
    ends: List[Tuple[float, int, Event, str]] = []
    for n, event in enumerate(events):
        at = float(event["time"])  # type: ignore[arg-type]
        while ends and ends[0][0] <= at:
            end, _, ended, call = heapq.heappop(ends)
            yield "end", end, ended, call
        call = ""
        if event.get("kind") != "register_failure":
            call = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            heapq.heappush(ends, (at + float(event["duration"]), n, event, call))  # type: ignore[arg-type]
        yield "start", at, event, call
    while ends:
        end, _, ended, call = heapq.heappop(ends)
        yield "end", end, ended, call


def to_fslog(events: List[Event], seed: int = SEED) -> Iterator[str]:
    """The lines FreeSWITCH 1.10 writes to freeswitch.log for these attempts (and some it writes around them)."""
    rng = random.Random(seed + 1)
    channels: Dict[str, str] = {}
    for what, at, event, call in _calls_and_ends(events, seed):
        stamp = f"{_local(at)}.{int(at % 1 * 1e6):06d} 97.53%"
        if what == "end":
            channel = channels.pop(call)
            if event["duration"]:
                yield f"{call} {stamp} [NOTICE] sofia.c:1075 Hangup {channel} [CS_EXCHANGE_MEDIA] [NORMAL_CLEARING]\n"
            else:
                yield f"{call} {stamp} [NOTICE] switch_cpp.cpp:1465 Hangup {channel} [CS_EXECUTE] [CALL_REJECTED]\n"
            yield f"{call} {stamp} [NOTICE] switch_core_session.c:1744 Session 1 ({channel}) Ended\n"
            continue
        if event.get("kind") == "register_failure":
            user, host = event["user"], event["host"]
            yield (f"{stamp} [WARNING] sofia_reg.c:1688 SIP auth challenge ({event['type']}) on sofia profile "
                   f"'{event['profile']}' for [{user}@{host}] from ip {event['ip']}\n")
            yield (f"{stamp} [WARNING] sofia_reg.c:1827 SIP auth failure ({event['type']}) on sofia profile "
                   f"'{event['profile']}' for [{user}@{host}] from ip {event['ip']}\n")
            continue
        profile = "external" if event["context"] == "public" else "internal"
        caller = rng.randint(100, 9999)
        channel = channels[call] = f"sofia/{profile}/{caller}@{SERVER}"
        number, port = event["number"], rng.randint(1024, 65535)
        yield f"{call} {stamp} [NOTICE] switch_channel.c:1142 New Channel {channel} [{call}]\n"
        yield (f"{call} {stamp} [INFO] sofia.c:10460 {channel} receiving invite from {event['ip']}:{port} "
               f"version: 1.10.12-release git a88d069 2024-08-02 21:02:27Z 64bit call-id: {call[:8]}\n")
        yield f"{call} {stamp} [DEBUG] switch_core_state_machine.c:600 ({channel}) State NEW\n"
        yield f"{call} {stamp} [DEBUG] switch_core_state_machine.c:311 ({channel}) Standard ROUTING\n"
        yield (f"{call} {stamp} [INFO] mod_dialplan_xml.c:639 Processing {caller} <{caller}>->{number} "
               f"in context {event['context']}\n")
        yield f"EXECUTE [depth=0] {channel} python(fs_guard.screen)\n"


def to_cdr(events: List[Event], seed: int = SEED) -> Iterator[str]:
    """mod_cdr_csv's Master.csv with the vanilla "example" template: one line per call, written
    as it ends; local times, whole seconds; the accountcode is the user id (as the vanilla
    directory sets it). Register failures have no channel, so no CDR."""
    rng = random.Random(seed + 1)
    for what, at, event, call in _calls_and_ends(events, seed):
        if what != "end":
            continue
        start, seconds = float(event["time"]), int(event["duration"])  # type: ignore[arg-type]
        caller = str(rng.randint(100, 9999))
        account = str(event.get("account") or "").split("@")[0]
        name = f"Office {account}" if account else rng.choice(["", caller, "Smith, John", 'Bob "the" Builder'])
        answered = _local(start + min(5, seconds)) if seconds else ""
        billsec = max(seconds - 5, 0) if seconds else 0
        cause = "NORMAL_CLEARING" if seconds else "CALL_REJECTED"
        codec = "PCMA" if seconds else ""
        fields = [name, caller, event["number"], event["context"], _local(start), answered, _local(start + seconds),
                  str(seconds), str(billsec), cause, call, "", account, codec, codec]
        yield ",".join(f'"{value}"' for value in fields) + "\n"


WRITERS = {"jsonl": to_jsonl, "csv": to_csv, "fslog": to_fslog, "cdr": to_cdr}


def write(path: str, lines: Iterator[str]) -> None:
    """Write ``lines``; gzipped, without a timestamp, when ``path`` ends in .gz."""
    if path.endswith(".gz"):
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed:
            with io.TextIOWrapper(packed, encoding="utf-8", newline="") as text:
                text.writelines(lines)
    else:
        with open(path, "w", encoding="utf-8", newline="") as text:
            text.writelines(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", default=OUTPUT, help=f"where to write (default: {OUTPUT})")
    parser.add_argument("--format", choices=sorted(WRITERS), default="jsonl")
    parser.add_argument("--scale", type=int, default=1,
                        help="N offices (and trunks, stolen accounts), each attack N times (default: 1)")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    events = generate(args.seed, args.scale)
    write(args.output, WRITERS[args.format](events))
    print(f"{args.output}: {len(events):,} attempts", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
