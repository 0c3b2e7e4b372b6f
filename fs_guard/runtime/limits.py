"""Fraud limits, the pure part: what each limit counts, by which key, and what a count means.

A limit counts the calls it applies to (its ``contexts``; its destination class: a prefix
list, destination ``countries``, ``number_types``) per key: the source address, the authenticated account, or the account and the
destination class together. Its thresholds, any of:

- ``calls``: calls in the last ``window`` seconds,
- ``distinct_numbers``: different destination numbers in the last ``window`` seconds
  (fan-out across a range: revenue-share fraud),
- ``concurrent``: calls up at the same time,
- ``distinct_countries``: different destination countries in the last ``window`` seconds
  (a stolen account fanning out over countries; instead of ``distinct_numbers``),

each with a ``warning`` and/or a ``critical`` value. A threshold is the most allowed: the
call that takes a count above it is a hit (``"critical": 20`` lets 20 calls through in the
window and rejects the 21st, as mod_hash's ``limit`` does with max 20). A warning hit
alerts; a critical hit alerts and, with ``action: reject``, rejects the call (reason
``limit``) and, with ``block_for``, blocks the key: all its calls are rejected until then.

Counting (``fs_guard.runtime.tally`` in-process, ``fs_guard.runtime.cluster`` in Redis)
applies ``judge`` to counts that include the call being screened, and records the call
only when no limit rejects it: a rejected call never happened, so it does not count.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from fs_guard.runtime import destinations
from fs_guard.runtime.destinations import NUMBER, SHORT, Destination
from fs_guard.runtime.rules import PrefixSet

SOURCE_IP = "source_ip"
ACCOUNT = "account"
ACCOUNT_PREFIX = "account_prefix"

ALERT = "alert"
REJECT = "reject"

CALLS = "calls"
DISTINCT = "distinct_numbers"
CONCURRENT = "concurrent"
METRICS = (CALLS, DISTINCT, CONCURRENT)
#: Counted in the distinct slot instead of numbers: the destination's country.
DISTINCT_COUNTRIES = "distinct_countries"

WARNING = "warning"
CRITICAL = "critical"

#: Keys tracked by default (all limits together); the least recently seen goes first.
DEFAULT_MAX_KEYS = 100_000
#: A concurrency slot whose hang-up was never seen (event lost, hook stopped) is freed after this.
DEFAULT_CALL_MAX_DURATION = 4 * 3600

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

#: Destinations a destination class can hold: phone numbers and short numbers (never an
#: emergency number, never what is no number).
CLASSIFIED = frozenset((NUMBER, SHORT))

#: A limit's destination class compiled: the kinds of destination it counts, its countries
#: and number types (empty: any), and whether the country must be known (distinct_countries).
Selection = Tuple[FrozenSet[str], FrozenSet[str], FrozenSet[str], bool]


@dataclass(frozen=True)
class Threshold:
    warning: Optional[int]
    critical: Optional[int]

    def level(self, count: int) -> Optional[str]:
        """The level of a call that brings the count to ``count``, or None."""
        if self.critical is not None and count > self.critical:
            return CRITICAL
        if self.warning is not None and count > self.warning:
            return WARNING
        return None

    def of(self, level: str) -> int:
        value = self.critical if level == CRITICAL else self.warning
        assert value is not None
        return value

    def top(self) -> int:
        """The highest value set: counts above it need no more precision."""
        return self.critical if self.critical is not None else self.warning  # type: ignore[return-value]


@dataclass(frozen=True)
class Limit:
    name: str
    by: str
    contexts: FrozenSet[str]  # empty: every context
    prefixes: PrefixSet  # empty: every number
    window: float  # seconds, for calls and distinct_numbers
    calls: Optional[Threshold]
    distinct: Optional[Threshold]
    concurrent: Optional[Threshold]
    action: str
    block_for: float  # 0: no block
    ban: bool
    countries: FrozenSet[str] = frozenset()  # empty: every country
    number_types: FrozenSet[str] = frozenset()  # empty: every type
    counts_countries: bool = False  # the distinct threshold counts destination countries, not numbers
    description: str = ""  # the operator's note: why the limit is there (check-config shows it)

    # Derived from the above once (``__post_init__``) and read by every call: plain attributes,
    # whose lookup Python 3.11 specialises (a cached_property's it does not).
    metrics: Tuple[str, str, str] = field(init=False, repr=False, compare=False)
    """The names of its three counts: calls, distinct numbers (or countries), concurrent calls."""
    by_destination: bool = field(init=False, repr=False, compare=False)
    """It selects calls by their classified destination (so the screen must classify)."""
    windowed: bool = field(init=False, repr=False, compare=False)
    """Counts over ``window`` (calls or distinct numbers)."""
    match: Optional[Callable[[str], Optional["re.Match[str]"]]] = field(init=False, repr=False, compare=False)
    """The prefix list's matcher, or None: every number. Its match's ``group()`` is the prefix a
    number starts with (``PrefixSet.match``'s answer), found in C."""
    select: Optional[Selection] = field(init=False, repr=False, compare=False)
    """What ``selects`` asks of a destination, or None: every destination."""
    quiet: Tuple[float, float, float] = field(init=False, repr=False, compare=False)
    """The count of calls, distinct numbers and concurrent calls at or below which nothing can
    hit (inf for a metric the limit does not count): the common case needs one comparison
    each, no judging."""
    kept: Tuple[int, int] = field(init=False, repr=False, compare=False)
    """Calls and distinct numbers kept per key: four times the highest threshold (more would
    change no decision)."""

    def __post_init__(self) -> None:
        by_destination = bool(self.countries or self.number_types or self.counts_countries)
        derived = {
            "metrics": (CALLS, DISTINCT_COUNTRIES if self.counts_countries else DISTINCT, CONCURRENT),
            "by_destination": by_destination,
            "windowed": self.calls is not None or self.distinct is not None,
            "match": re.compile(_trie(self.prefixes.prefixes)).match if self.prefixes else None,
            "select": (frozenset((NUMBER,)) if self.counts_countries else CLASSIFIED, self.countries,
                       self.number_types, self.counts_countries) if by_destination else None,
            "quiet": (_lowest(self.calls), _lowest(self.distinct), _lowest(self.concurrent)),
            "kept": (4 * self.calls.top() if self.calls else 0, 4 * self.distinct.top() if self.distinct else 0),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)  # frozen

    def selects(self, destination: Optional[Destination]) -> bool:
        """Whether a call to ``destination`` is in its destination class (countries, number types;
        never an emergency number or what is no number; a limit of distinct countries counts only
        phone numbers whose country is known). ``for_call`` asks the same, inline."""
        select = self.select
        return select is None or (destination is not None and _selected(select, destination))

    def thresholds(self) -> Tuple[Tuple[str, Threshold], ...]:
        return self._thresholds

    @cached_property
    def _thresholds(self) -> Tuple[Tuple[str, Threshold], ...]:
        # Computed once per compiled limit (frozen: cached_property writes __dict__ directly).
        return tuple((metric, threshold) for metric, threshold in
                     zip(self.metrics, (self.calls, self.distinct, self.concurrent)) if threshold is not None)

    def counts(self, calls: int, distinct: int, concurrent: int) -> Dict[str, int]:
        """The counts of the metrics this limit has, by name (what ``judge`` reads)."""
        return {metric: value for metric, value in zip(self.metrics, (calls, distinct, concurrent))
                if metric in self._metric_names}

    @cached_property
    def _metric_names(self) -> FrozenSet[str]:
        return frozenset(metric for metric, _ in self._thresholds)

    def measure(self, metric: str) -> str:
        """What one of its metrics counts, in words: ``calls in 60 s``."""
        return {CALLS: f"calls in {self.window:g} s", DISTINCT: f"distinct numbers in {self.window:g} s",
                DISTINCT_COUNTRIES: f"distinct countries in {self.window:g} s", CONCURRENT: "concurrent calls"}[metric]

    def describe(self) -> str:
        """One line for status and check-config: what it counts and when it acts."""
        scope = f"by {self.by}"
        if self.contexts:
            scope += f" in {', '.join(sorted(self.contexts))}"
        if self.prefixes:
            scope += f" to {', '.join(sorted(self.prefixes.prefixes))}"
        if self.countries:
            scope += f" to countries {', '.join(sorted(self.countries))}"
        if self.number_types:
            scope += f" to types {', '.join(sorted(self.number_types))}"
        parts = []
        for metric, threshold in self.thresholds():
            what = self.measure(metric)
            values = ", ".join(f"{level} > {value}" for level, value in
                               ((WARNING, threshold.warning), (CRITICAL, threshold.critical)) if value is not None)
            parts.append(f"{what}: {values}")
        act = self.action
        if self.action == REJECT and self.block_for:
            act += f", block {self.block_for:g} s"
        return f"{scope}; {'; '.join(parts)}; {act}, ban lines {'on' if self.ban else 'off'}"


class Check(NamedTuple):
    """One limit applied to one call: its key, and the identity a block would lock."""

    limit: Limit
    key: str
    identity: str  # "ip:ADDR" or "account:USER@DOMAIN"


class Hit(NamedTuple):
    limit: Limit
    key: str
    metric: str
    count: int
    threshold: int
    level: str


class Outcome(NamedTuple):
    """What counting decided for one call."""

    hits: Tuple[Hit, ...]
    rejected_by: Optional[Limit]  # the limit whose critical hit (or block) rejects the call
    key: str  # the rejecting limit's key ("" when accepted)
    blocked_until: Optional[float]  # set when the call was rejected by (or started) a block
    counted: Tuple[str, ...]  # names of the limits that counted this call


ACCEPTED = Outcome((), None, "", None, ())


#: ``tuple.__new__(Check, (...))`` builds a Check in C; ``Check(...)`` runs the NamedTuple's
#: generated ``__new__`` in Python, which costs the hot path several times as much.
new_tuple = tuple.__new__

#: One limit as ``for_call`` walks it: (limit, name, prefix matcher or None, key kind,
#: destination selection or None).
Step = Tuple["Limit", str, Optional[Callable[[str], Optional["re.Match[str]"]]], str, Optional[Selection]]


#: The limits of one context as a call needs them, compiled once (no attribute lookups per
#: limit and call), a plain tuple (unpacking one is a specialised instruction, a NamedTuple's
#: is not): (every step; the steps a call can meet, indexed by whether its number starts with
#: a first character of the context's prefix lists (+1) and whether its destination is one a
#: class may hold (+2); those first characters; whether an account limit may count a call
#: there, so the account is read).
Plan = Tuple[Tuple[Step, ...], Tuple[Tuple[Step, ...], ...], FrozenSet[str], bool]


def _plan(limits: Tuple[Limit, ...]) -> Plan:
    steps = tuple((limit, limit.name, limit.match, limit.by, limit.select) for limit in limits)
    # Four variants: a number that may start with a listed prefix or not, a destination a
    # class may hold or not. An extension skips every prefix list and destination class.
    variants = tuple(tuple(step for step in steps if (step[2] is None or prefixed) and (step[4] is None or classified))
                     for classified in (False, True) for prefixed in (False, True))
    return (steps, variants, frozenset(prefix[0] for limit in limits for prefix in limit.prefixes.prefixes),
            any(limit.by != SOURCE_IP for limit in limits))


@dataclass(frozen=True)
class LimitSet:
    """The compiled limits of one configuration, looked up per context once."""

    limits: Tuple[Limit, ...]
    max_keys: int
    call_max_duration: float
    by_context: Mapping[str, Tuple[Limit, ...]]
    everywhere: Tuple[Limit, ...]  # the limits of a context not named by any limit
    needs_account: bool = False  # some limit is by account: read the account off the channel
    has_concurrency: bool = False
    needs_destination: bool = False  # some limit selects by country or type, or counts countries
    rejects: bool = False  # some limit's action is reject
    # ``by_context`` and ``everywhere`` compiled once (``__post_init__``) into what a call needs.
    plans: Mapping[str, Plan] = field(init=False, repr=False, compare=False)
    plan_everywhere: Plan = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plans", {context: _plan(limits) for context, limits in self.by_context.items()})
        object.__setattr__(self, "plan_everywhere", _plan(self.everywhere))  # frozen

    def __bool__(self) -> bool:
        return bool(self.limits)

    def for_context(self, context: str) -> Tuple[Limit, ...]:
        return self.by_context.get(context, self.everywhere)


NO_LIMITS = LimitSet((), DEFAULT_MAX_KEYS, DEFAULT_CALL_MAX_DURATION, {}, ())


def _selected(select: Selection, destination: Destination) -> bool:
    kinds, countries, types, known = select
    region = destination.region
    return (destination.kind in kinds and (not known or bool(region)) and (not countries or region in countries)
            and (not types or destination.type in types))


def _lowest(threshold: Optional[Threshold]) -> float:
    """The lowest value of ``threshold`` (inf: none)."""
    if threshold is None:
        return math.inf
    return min(value for value in (threshold.warning, threshold.critical) if value is not None)


def _trie(prefixes: FrozenSet[str]) -> str:
    """A regular expression that matches the shortest of ``prefixes`` a text starts with, as a
    trie (one branch per character), so a long list costs a number no more than its depth.
    A prefix that starts with a shorter one is left out: the shorter one always matches first."""
    root: Dict[str, Any] = {}
    for prefix in sorted(prefixes, key=len):
        node: Optional[Dict[str, Any]] = root
        for char in prefix[:-1]:
            node = node.setdefault(char, {})
            if node is None:  # a shorter prefix ends here
                break
        else:
            node.setdefault(prefix[-1], None)

    def branches(node: Dict[str, Any]) -> str:
        each = [re.escape(char) + ("" if child is None else branches(child)) for char, child in sorted(node.items())]
        return each[0] if len(each) == 1 else "(?:" + "|".join(each) + ")"
    return branches(root)


def _threshold(values: Optional[Mapping[str, int]]) -> Optional[Threshold]:
    if values is None:
        return None
    return Threshold(values.get(WARNING), values.get(CRITICAL))


def compile_limits(section: Mapping[str, Any]) -> Tuple[LimitSet, List[str]]:
    """The ``limits`` of a schema-valid ``fail2ban`` object, and the semantic errors the schema cannot see."""
    errors: List[str] = []
    limits: List[Limit] = []
    seen: Dict[str, int] = {}
    for index, spec in enumerate(section.get("limits", ())):
        path = f"fail2ban.limits[{index}]"
        name = spec["name"]
        if name in seen:
            errors.append(f"{path}.name: {name!r} is already the name of limits[{seen[name]}]")
        seen.setdefault(name, index)
        by = spec["by"]
        prefixes = PrefixSet.of(spec.get("prefixes", ()))
        if by == ACCOUNT_PREFIX and not prefixes:
            errors.append(f"{path}.prefixes: by account_prefix needs the prefixes that make up the key")
        thresholds = {metric: _threshold(spec.get(metric)) for metric in METRICS}
        counts_countries = DISTINCT_COUNTRIES in spec
        if counts_countries:
            if thresholds[DISTINCT]:
                errors.append(f"{path}: a limit counts distinct_numbers or distinct_countries, not both "
                              "(make two limits)")
            thresholds[DISTINCT] = _threshold(spec[DISTINCT_COUNTRIES])
        if not any(thresholds.values()):
            errors.append(f"{path}: set at least one of calls, distinct_numbers, distinct_countries, concurrent")
        errors += destination_errors(path, spec)
        for metric, threshold in thresholds.items():
            if threshold and threshold.warning is not None and threshold.critical is not None \
                    and threshold.warning >= threshold.critical:
                shown = DISTINCT_COUNTRIES if metric == DISTINCT and counts_countries else metric
                errors.append(f"{path}.{shown}: warning ({threshold.warning}) must be below critical "
                              f"({threshold.critical})")
        if (thresholds[CALLS] or thresholds[DISTINCT]) and "window" not in spec:
            errors.append(f"{path}.window: calls, distinct_numbers and distinct_countries count over a window "
                          "of seconds: set it")
        action = spec.get("action", ALERT)
        if spec.get("block_for") and action != REJECT:
            errors.append(f"{path}.block_for: only a limit with action reject can block")
        limits.append(Limit(
            name=name,
            by=by,
            contexts=frozenset(spec.get("contexts", ())),
            prefixes=prefixes,
            window=float(spec.get("window", 0)),
            calls=thresholds[CALLS],
            distinct=thresholds[DISTINCT],
            concurrent=thresholds[CONCURRENT],
            action=action,
            block_for=float(spec.get("block_for", 0)),
            ban=spec.get("ban", by == SOURCE_IP),
            countries=frozenset(spec.get("countries", ())),
            number_types=frozenset(spec.get("number_types", ())),
            counts_countries=counts_countries,
            description=spec.get("description", ""),
        ))
    named = {context for limit in limits for context in limit.contexts}
    everywhere = tuple(limit for limit in limits if not limit.contexts)
    by_context = {context: tuple(limit for limit in limits if not limit.contexts or context in limit.contexts)
                  for context in named}
    settings = section.get("limit_settings", {})
    return LimitSet(
        tuple(limits),
        settings.get("max_keys", DEFAULT_MAX_KEYS),
        float(settings.get("call_max_duration", DEFAULT_CALL_MAX_DURATION)),
        by_context,
        everywhere,
        needs_account=any(limit.by != SOURCE_IP for limit in limits),
        has_concurrency=any(limit.concurrent is not None for limit in limits),
        needs_destination=any(limit.by_destination for limit in limits),
        rejects=any(limit.action == REJECT for limit in limits),
    ), errors


def destination_errors(path: str, spec: Mapping[str, Any]) -> List[str]:
    """A limit's countries and number types, checked against libphonenumber (imported only then)."""
    if not (spec.get("countries") or spec.get("number_types")):
        return []
    return (destinations.region_errors(f"{path}.countries", spec.get("countries", ()))
            + destinations.type_errors(f"{path}.number_types", spec.get("number_types", ())))


def for_call(limitset: LimitSet, context: str, number: str, source_ip: Optional[str], account: Optional[str],
             skip: Sequence[str] = (), destination: Optional[Destination] = None,
             read_address: Optional[Callable[[Any], Optional[str]]] = None, channel: Any = None,
             ) -> Tuple[List[Check], Tuple[str, ...]]:
    """A call's checks, the (limit, key) pairs it counts toward, and its blockable identities
    (``ip:ADDR``, ``account:USER@DOMAIN``): what the live screen and ``fs-guard replay`` both
    hand to a tally's ``count``.

    ``source_ip`` must be the validated socket address; ``account`` the authenticated
    ``user@domain``, or None: an unauthenticated call has no account and account limits
    do not count it (never one shared key for every anonymous call). ``skip`` names the
    limits that already counted this call (a transfer screens it again). ``destination`` is the
    number's classification (None: not classified; limits by destination then skip the call).
    ``read_address``, given instead of ``source_ip``, reads it off ``channel`` the first time a
    ``source_ip`` limit applies to the call: the screen reads the channel only then.
    """
    ip_identity = "ip:" + source_ip if source_ip else ""
    account_identity = "account:" + account if account else ""
    found = []
    _, variants, firsts, _ = limitset.plans.get(context, limitset.plan_everywhere)
    steps = variants[(number[:1] in firsts) + 2 * (destination is not None and destination.kind in CLASSIFIED)]
    for limit, name, match, by, select in steps:
        if skip and name in skip:
            continue
        matched = None
        if match is not None:
            matched = match(number)
            if matched is None:
                continue
        if select is not None:  # _selected, inline: the hot path
            if destination is None:
                continue
            kinds, countries, types, known = select
            region = destination.region
            if destination.kind not in kinds or (known and not region) or (countries and region not in countries) \
                    or (types and destination.type not in types):
                continue
        if by == SOURCE_IP:
            if read_address is not None:
                source_ip, read_address = read_address(channel), None
                ip_identity = "ip:" + source_ip if source_ip else ""
            if source_ip:
                found.append(new_tuple(Check, (limit, source_ip, ip_identity)))
        elif account:
            found.append(new_tuple(Check, (limit, account if by == ACCOUNT else f"{account}/{matched.group()}",
                                           account_identity)))
    if ip_identity:
        return found, (ip_identity, account_identity) if account_identity else (ip_identity,)
    return found, (account_identity,) if account_identity else ()


def judge(limit: Limit, counts: Mapping[str, int]) -> Tuple[List[Tuple[str, int, int, str]], bool]:
    """The hits of one limit for counts that include the call: (metric, count, threshold, level)
    each, and whether a critical hit rejects the call (``enforce`` is applied by the caller)."""
    hits = []
    critical = False
    for metric, threshold in limit._thresholds:
        count = counts.get(metric, 0)
        level = threshold.level(count)
        if level is not None:
            hits.append((metric, count, threshold.of(level), level))
            critical = critical or level == CRITICAL
    return hits, critical and limit.action == REJECT
