"""Destinations: classifying a number with libphonenumber's metadata, cached and not; the screen's
reject path with destination rules against an empty handler; the metadata's memory.
Times are CPU time of the process (``time.process_time_ns``), so that a machine busy with
other work inflates them less than wall time.

Each part runs in a fresh child process (``harness.run_child``): the cache and the compiled
numbering plans start empty, as in a FreeSWITCH that has just loaded fs-guard.

- uncached: numbers never seen before (national format, 00 and + forms, a UK switch), with
  the calling codes' plans already compiled (``destinations.warm``: what every later call finds);
- first number of a calling code: the one-off compile of that code's plans;
- cached: the same numbers again;
- reject path: mod_python3's import + reload + handler, a UK office's rules (international
  only to EU countries, no premium rate or shared cost), premium-rate numbers rejected
  (``denied_number_type``), each call a number never seen (the worst case) or one seen before;
  beside them, in the same run, the same numbers rejected by a prefix rule in a context
  without a dialling region (nothing classified): the destination rules' own share;
- memory: what ``import phonenumbers`` and compiling every calling code's plans allocate
  (tracemalloc), and the process's peak RSS with and without them.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import random
import sys
import time
from typing import Dict, List

from harness import Row, interleaved, run_child, scratch, use_fake_freeswitch

COUNT = 2000
LIBRARY_COUNT = 200
#: The worked example of docs/destinations.md.
UK_OFFICE = {"dialling": {"region": "GB"}, "deny_prefix": [], "destination_number_max_len": 20,
             "allow_countries": ["AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
                                 "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"],
             "deny_number_types": ["premium_rate", "shared_cost"]}


def dialled(seed: int, count: int = COUNT) -> List[str]:
    """Numbers a UK switch sees: national (0...), international (00...), E.164 (+...)."""
    rnd = random.Random(seed)
    out = []
    for _ in range(count):
        form = rnd.random()
        if form < 0.4:
            out.append("0" + str(rnd.randint(10 ** 9, 10 ** 10 - 1)))
        elif form < 0.8:
            out.append("00" + rnd.choice(["33", "49", "1", "44", "39", "34", "371", "53", "882"])
                       + str(rnd.randint(10 ** 7, 10 ** 10)))
        else:
            out.append("+" + rnd.choice(["33", "49", "1", "44", "61", "81"]) + str(rnd.randint(10 ** 8, 10 ** 10)))
    return out


def classification(rounds: int) -> Dict[str, float]:
    from fs_guard.runtime import destinations

    destinations.warm()
    fresh = iter(range(10 ** 9))
    classifier = destinations.Classifier(destinations.Dialling("GB"))
    seen = dialled(1)
    for number in seen:
        classifier.classify(number)

    def uncached() -> int:
        for number in dialled(next(fresh) + 100):
            classifier.classify(number)
        return COUNT

    def cached() -> int:
        for number in seen:
            classifier.classify(number)
        return COUNT

    def library() -> int:
        """What libphonenumber's own calls cost for the same answers, on numbers never seen."""
        import phonenumbers

        numbers = dialled(next(fresh) + 100, LIBRARY_COUNT)
        for number in numbers:
            try:
                parsed = phonenumbers.parse(number, "GB")
            except phonenumbers.NumberParseException:
                continue
            phonenumbers.number_type(parsed)
            phonenumbers.is_valid_number(parsed)
            phonenumbers.region_code_for_number(parsed)
        return LIBRARY_COUNT

    results = interleaved({"uncached": uncached, "cached": cached, "library": library}, rounds,
                          clock=time.process_time_ns)
    results["cache_entries"] = float(classifier.cache_info().currsize)
    return results


def first_of_a_code() -> Dict[str, float]:
    """The one-off cost of a calling code's first number: its plans compiled (median over codes)."""
    import statistics

    from fs_guard.runtime import destinations

    classifier = destinations.Classifier(destinations.Dialling("GB"))
    costs = []
    for code in sorted(destinations.library().region_codes):
        if code in (44,):
            continue
        start = time.process_time_ns()
        classifier.classify(f"+{code}123456789")
        costs.append((time.process_time_ns() - start) / 1000.0)
    return {"first_of_a_code": statistics.median(costs), "first_of_a_code_max": max(costs)}


def memory() -> Dict[str, float]:
    import resource
    import tracemalloc

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    from fs_guard.runtime import destinations

    destinations.library()
    imported = tracemalloc.get_traced_memory()[0]
    destinations.warm()
    compiled = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    gc.collect()
    return {"traced_import_mib": imported / 2 ** 20, "traced_all_mib": compiled / 2 ** 20,
            "rss_before_mib": before / 1024, "rss_after_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def screen(rounds: int) -> Dict[str, float]:
    """Import + reload + handler as mod_python3 does it, as bench_screen measures it."""
    use_fake_freeswitch()
    import fsctl
    from bench_screen import BATCH, EMPTY, _import_freeswitch

    work = scratch()
    with open(os.path.join(work, "fs_guard.json"), "w") as handle:
        # default: the UK office (destination rules); public: a prefix rule, nothing classified.
        json.dump({"fail2ban": {"deny_prefix": ["0909"], "contexts": {"default": UK_OFFICE}}}, handle)
    with open(os.path.join(work, "empty_app.py"), "w") as handle:
        handle.write(EMPTY)
    sys.path.insert(0, work)
    fsctl.reset({"conf_dir": work, "log_dir": work})
    premium = [f"09098{n:06d}" for n in range(BATCH)]
    unseen = iter(range(BATCH, 10 ** 6))
    made = [0]

    def sessions(numbers: List[str], context: str) -> List:
        made[0] += BATCH
        return [fsctl.call_session(destination_number=number, context=context, sip_network_ip=address,
                                   network_addr=address, sip_user_agent="Yealink SIP-T46S")
                for number, address in zip(numbers, (f"198.18.{n // 256 % 256}.{n % 256}"
                                                     for n in range(made[0] - BATCH, made[0])))]

    numbers = {
        "empty": lambda: premium,
        "reject_prefix": lambda: premium,  # in public: rejected by deny_prefix, never classified
        "reject_seen": lambda: premium,  # the same premium-rate numbers every round: classified from the cache
        "reject_new": lambda: [f"09098{next(unseen):06d}" for _ in range(BATCH)],  # never seen: classified anew
    }
    modules = {"empty": "empty_app", "reject_prefix": "fs_guard.screen", "reject_seen": "fs_guard.screen",
               "reject_new": "fs_guard.screen"}
    ready: Dict[str, List] = {}
    main = sys.modules["__main__"].__dict__

    def prepare(name: str) -> None:
        fsctl.reset({"conf_dir": work, "log_dir": work})
        ready[name] = sessions(numbers[name](), "public" if name == "reject_prefix" else "default")
        gc.collect()

    def invoker(name: str):
        def batch() -> int:
            for session in ready[name]:
                loaded = importlib.reload(importlib.import_module(modules[name]))
                exec(_import_freeswitch(), main)
                loaded.handler(session, "")
            return BATCH
        return batch

    batches = {name: invoker(name) for name in modules}
    for name, batch in batches.items():  # warm-up: bytecode written, config loaded, log open
        prepare(name)
        batch()
    from fs_guard.runtime import destinations, state

    destinations.warm()  # every later call finds its calling code compiled
    results = interleaved(batches, rounds, prepare, clock=time.process_time_ns)
    results["rejected"] = float(state.STATS.snapshot().get("rejected.denied_number_type", 0))
    return results


def child(part: str, rounds: int) -> Dict[str, float]:
    if part == "classification":
        return classification(rounds)
    if part == "first":
        return first_of_a_code()
    if part == "memory":
        return memory()
    return screen(rounds)


def run(rounds: int = 30) -> List[Row]:
    classified = run_child(__file__, "classification", str(rounds))
    first = run_child(__file__, "first", "1")
    mem = run_child(__file__, "memory", "1")
    screened = run_child(__file__, "screen", str(rounds))
    assert screened["rejected"] > 0, "the reject path rejected nothing"
    rows = [
        Row("destination classification, a number never seen (plans compiled; CPU time)", classified["uncached"],
            "µs/number", "≤ 25 µs", classified["uncached"] <= 25.0,
            f"libphonenumber's parse, number_type, is_valid_number, region_code_for_number: "
            f"{classified['library']:.0f} µs/number ({classified['library'] / classified['uncached']:.1f}×)"),
        Row("destination classification, a recent number (cache; CPU time)", classified["cached"], "µs/number", "≤ 2 µs",
            classified["cached"] <= 2.0, f"cache holds at most {int(classified['cache_entries']):,} numbers"),
        Row("… first number of a calling code (its plans compiled, once per process): median / max",
            first["first_of_a_code"], f"/ {first['first_of_a_code_max']:.0f} µs"),
    ]
    plain = screened["reject_prefix"] - screened["empty"]
    rows.append(Row("screen invocation, rejected by a prefix rule (nothing classified), over the empty handler "
                    "(CPU time; the reference)", plain, "µs/call", "", None,
                    f"empty handler: {screened['empty']:.1f} µs/call"))
    for kind, label in (("reject_new", "a premium-rate number never seen"), ("reject_seen", "one seen before")):
        over = screened[kind] - screened["empty"]
        rows.append(Row(f"screen invocation with destination rules, rejected call ({label}), over the empty "
                        "handler (CPU time)", over, "µs/call", "≤ 30 µs", over <= 30.0,
                        f"the destination rules' own share: {screened[kind] - screened['reject_prefix']:.1f} µs"))
    rows.append(Row("memory: import phonenumbers / + every calling code's plans compiled (tracemalloc)",
                    mem["traced_import_mib"], f"/ {mem['traced_all_mib']:.1f} MiB (peak RSS "
                    f"{mem['rss_before_mib']:.0f} → {mem['rss_after_mib']:.0f} MiB)"))
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]))))
    else:
        from harness import table

        print(table(run()))
