"""The decision: a pure function from compiled rules and call facts to a verdict.

Rules apply in this order; the first that fires gives the reason:

1. ``empty_number``        the destination number is missing or empty
   (an emergency number of the home region, ``dialling.region``, is accepted here: no rule
   below, no limit and no block ever rejects it)
2. ``too_long``            longer than ``destination_number_max_len``
3. ``bad_characters``      a character outside ``allowed_characters`` (when set)
4. ``deny_prefix``         starts with one of ``deny_prefix``
5. ``not_allowed_prefix``  ``allow_prefix`` is not empty and the number starts with none of them
6. ``invalid_number``      ``reject_invalid_numbers`` and libphonenumber says the number is not
                           a valid number of its country
7. ``denied_country``      the number's country is in ``deny_countries``
8. ``not_allowed_country`` ``allow_countries`` is not empty and the number's country is neither
                           in it nor the home region
9. ``denied_number_type``  the number's type (``premium_rate``, ``shared_cost``, ...) is in
                           ``deny_number_types``
10. ``scanner_user_agent`` the user agent contains one of ``deny_user_agent`` (case-insensitive)

Rules 6 to 9 read the number's ``Destination`` (``fs_guard.runtime.destinations``) and apply
to phone numbers and short numbers, never to extensions and feature codes.

Prefix sets are looked up by the number's own prefixes, one set probe per distinct
prefix length, so the cost does not grow with the number of prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet, Iterable, NamedTuple, Optional, Tuple

from fs_guard.runtime.destinations import EMERGENCY, NUMBER, NOT_A_NUMBER, Classifier, Destination

EMPTY_NUMBER = "empty_number"
TOO_LONG = "too_long"
BAD_CHARACTERS = "bad_characters"
DENY_PREFIX = "deny_prefix"
NOT_ALLOWED_PREFIX = "not_allowed_prefix"
SCANNER_USER_AGENT = "scanner_user_agent"
INTERNAL_ERROR = "internal_error"
REGISTER_FAILURE = "register_failure"
LIMIT = "limit"  # a fraud limit (fs_guard.runtime.limits) rejected the call
INVALID_NUMBER = "invalid_number"
DENIED_COUNTRY = "denied_country"
NOT_ALLOWED_COUNTRY = "not_allowed_country"
DENIED_NUMBER_TYPE = "denied_number_type"

#: Every reason a ban-log line or a verdict can carry (a public contract).
REASONS: Tuple[str, ...] = (
    EMPTY_NUMBER,
    TOO_LONG,
    BAD_CHARACTERS,
    DENY_PREFIX,
    NOT_ALLOWED_PREFIX,
    SCANNER_USER_AGENT,
    INTERNAL_ERROR,
    REGISTER_FAILURE,
    LIMIT,
    INVALID_NUMBER,
    DENIED_COUNTRY,
    NOT_ALLOWED_COUNTRY,
    DENIED_NUMBER_TYPE,
)


@dataclass(frozen=True)
class PrefixSet:
    """Prefixes grouped for lookup: the distinct lengths, shortest first, and one set."""

    lengths: Tuple[int, ...]
    prefixes: FrozenSet[str]

    @classmethod
    def of(cls, prefixes: Iterable[str]) -> "PrefixSet":
        unique = frozenset(p for p in prefixes if p)
        return cls(tuple(sorted({len(p) for p in unique})), unique)

    def __bool__(self) -> bool:
        return bool(self.prefixes)

    def match(self, number: str) -> Optional[str]:
        """The shortest prefix of ``number`` in the set, or None."""
        prefixes = self.prefixes
        size = len(number)
        for length in self.lengths:
            if length > size:
                return None
            head = number[:length]
            if head in prefixes:
                return head
        return None


@dataclass(frozen=True)
class Rules:
    """One compiled rule set (the top level, or a context's override of it)."""

    max_len: int
    deny: PrefixSet
    allow: PrefixSet
    deny_user_agents: Tuple[str, ...] = ()
    allowed_characters: Optional[FrozenSet[str]] = None
    monitor: bool = False
    ban: bool = True
    classifier: Optional[Classifier] = None  # None: no dialling.region, numbers are not classified
    deny_countries: FrozenSet[str] = frozenset()
    allow_countries: FrozenSet[str] = frozenset()  # the home region included; empty: any country
    deny_types: FrozenSet[str] = frozenset()
    reject_invalid: bool = False
    #: Some rule reads the destination (any of the four above): every number is classified,
    #: not only those short enough to be an emergency number.
    destination_rules: bool = False


class CallFacts(NamedTuple):
    """What the screen knows of a call; every text field is attacker-controlled.

    A NamedTuple, not a dataclass: one is built per call, and a tuple is built in C.
    """

    number: Optional[str]
    context: str = ""
    source_ip: Optional[str] = None
    user_agent: Optional[str] = None
    destination: Optional[Destination] = None  # None: decide classifies the number if its rules need it


@dataclass(frozen=True)
class Verdict:
    accept: bool
    reason: Optional[str] = None  # why rejected; for an accept, EMERGENCY or None

    @property
    def emergency(self) -> bool:
        return self.reason == EMERGENCY


ACCEPT = Verdict(True)
EMERGENCY_CALL = Verdict(True, EMERGENCY)
_REJECT = {reason: Verdict(False, reason) for reason in REASONS}


def reject(reason: str) -> Verdict:
    return _REJECT[reason]


def scanner_user_agent(rules: Rules, user_agent: Optional[str]) -> bool:
    if not user_agent or not rules.deny_user_agents:
        return False
    folded = user_agent.casefold()
    return any(needle in folded for needle in rules.deny_user_agents)


def destination_of(rules: Rules, number: Optional[str], needed: bool = False) -> Optional[Destination]:
    """The number's destination when something reads it: always when a destination rule (or,
    ``needed``, a limit) does; otherwise only a string short enough to be an emergency number."""
    classifier = rules.classifier
    if classifier is None or not number:
        return None
    if needed or rules.destination_rules or len(number) <= classifier.short_len:
        return classifier.classify(number)
    return None


def decide(rules: Rules, facts: CallFacts) -> Verdict:
    number = facts.number
    if not number:
        return _REJECT[EMPTY_NUMBER]
    destination = facts.destination
    classifier = rules.classifier
    if destination is None and classifier is not None and (rules.destination_rules
                                                            or len(number) <= classifier.short_len):
        destination = classifier.classify(number)
    if destination is not None and destination.kind == EMERGENCY:
        return EMERGENCY_CALL
    if len(number) > rules.max_len:
        return _REJECT[TOO_LONG]
    allowed = rules.allowed_characters
    if allowed is not None and not allowed.issuperset(number):
        return _REJECT[BAD_CHARACTERS]
    if rules.deny and rules.deny.match(number) is not None:
        return _REJECT[DENY_PREFIX]
    if rules.allow and rules.allow.match(number) is None:
        return _REJECT[NOT_ALLOWED_PREFIX]
    if rules.destination_rules and destination is not None and destination.kind != NOT_A_NUMBER:
        # Rules 6 to 9, inline: this is the hot path (an emergency number has returned above).
        if rules.reject_invalid and destination.kind == NUMBER and not destination.valid:
            return _REJECT[INVALID_NUMBER]
        region = destination.region
        if region in rules.deny_countries:
            return _REJECT[DENIED_COUNTRY]
        if rules.allow_countries and region not in rules.allow_countries:
            return _REJECT[NOT_ALLOWED_COUNTRY]
        if destination.type in rules.deny_types:
            return _REJECT[DENIED_NUMBER_TYPE]
    if scanner_user_agent(rules, facts.user_agent):
        return _REJECT[SCANNER_USER_AGENT]
    return ACCEPT
