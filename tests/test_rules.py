"""The decision: each rule, its reason token, and the order in which rules apply."""

from __future__ import annotations

import pytest

from fs_guard.runtime import rules as r
from fs_guard.runtime.config import compile_config, default_config
from fs_guard.runtime.rules import ACCEPT, CallFacts, PrefixSet, decide


def rules_of(**section):
    return compile_config(section, None).base


def verdict(number, ua=None, **section):
    return decide(rules_of(**section), CallFacts(number, "public", "203.0.113.7", ua))


@pytest.mark.parametrize("number", [None, ""])
def test_a_missing_or_empty_number_is_rejected(number):
    assert verdict(number) == r.reject(r.EMPTY_NUMBER)


def test_a_number_longer_than_the_maximum_is_rejected_and_one_at_the_maximum_passes():
    assert verdict("1" * 13, destination_number_max_len=12).reason == r.TOO_LONG
    assert verdict("1" * 12, destination_number_max_len=12) == ACCEPT


def test_a_number_starting_with_a_deny_prefix_is_rejected():
    assert verdict("00441234", deny_prefix=["00"]).reason == r.DENY_PREFIX
    assert verdict("+441234", deny_prefix=["+"]).reason == r.DENY_PREFIX
    assert verdict("0441234", deny_prefix=["00"]) == ACCEPT


@pytest.mark.parametrize("number, reason", [
    ("00", r.DENY_PREFIX), ("0", None), ("000", r.DENY_PREFIX),  # the prefix itself, one shorter, one longer
    ("+", r.DENY_PREFIX), ("", r.EMPTY_NUMBER), ("+4", r.DENY_PREFIX),
    ("9011", r.DENY_PREFIX), ("901", None), ("90111", r.DENY_PREFIX),
])
def test_deny_prefixes_at_the_exact_boundary(number, reason):
    assert verdict(number, deny_prefix=["00", "+", "9011"]).reason == reason


@pytest.mark.parametrize("number, reason", [
    ("49", None), ("4", r.NOT_ALLOWED_PREFIX), ("491", None),  # the prefix itself, one shorter, one longer
    ("+", None), ("", r.EMPTY_NUMBER), ("+4", None),
    ("1800", None), ("180", r.NOT_ALLOWED_PREFIX), ("18001", None),
])
def test_allow_prefixes_at_the_exact_boundary(number, reason):
    assert verdict(number, deny_prefix=[], allow_prefix=["49", "+", "1800"]).reason == reason


def test_with_allow_prefixes_only_numbers_starting_with_one_pass():
    section = {"allow_prefix": ["1", "49"]}
    assert verdict("1001", **section) == ACCEPT
    assert verdict("4930123", **section) == ACCEPT
    assert verdict("5001", **section).reason == r.NOT_ALLOWED_PREFIX


def test_an_empty_allow_list_allows_any_number():
    assert verdict("5551234", allow_prefix=[]) == ACCEPT


def test_characters_outside_allowed_characters_are_rejected():
    section = {"allowed_characters": "0123456789*#"}
    assert verdict("*98", **section) == ACCEPT
    assert verdict("10a1", **section).reason == r.BAD_CHARACTERS
    assert verdict("100\n1", **section).reason == r.BAD_CHARACTERS


def test_without_allowed_characters_any_character_is_allowed():
    assert verdict("conference") == ACCEPT


def test_scanner_user_agents_match_case_insensitive_substrings():
    section = {"deny_user_agent": ["friendly-scanner", "SIPVicious"]}
    assert verdict("1001", ua="Friendly-Scanner 1.0", **section).reason == r.SCANNER_USER_AGENT
    assert verdict("1001", ua="sipvicious/0.3", **section).reason == r.SCANNER_USER_AGENT
    assert verdict("1001", ua="Yealink SIP-T46S", **section) == ACCEPT
    assert verdict("1001", ua=None, **section) == ACCEPT


def test_rules_apply_in_the_documented_order():
    section = {
        "destination_number_max_len": 8,
        "allowed_characters": "0123456789",
        "deny_prefix": ["00"],
        "allow_prefix": ["1"],
        "deny_user_agent": ["scanner"],
    }
    ua = "friendly-scanner"
    assert verdict("", ua=ua, **section).reason == r.EMPTY_NUMBER
    assert verdict("00x456789", ua=ua, **section).reason == r.TOO_LONG
    assert verdict("00x", ua=ua, **section).reason == r.BAD_CHARACTERS
    assert verdict("0044", ua=ua, **section).reason == r.DENY_PREFIX
    assert verdict("2044", ua=ua, **section).reason == r.NOT_ALLOWED_PREFIX
    assert verdict("1044", ua=ua, **section).reason == r.SCANNER_USER_AGENT
    assert verdict("1044", ua="Yealink", **section) == ACCEPT


def test_the_built_in_defaults_are_max_length_12_and_deny_00_and_plus():
    base = default_config().base
    assert base.max_len == 12
    assert base.deny.prefixes == {"00", "+"}
    assert not base.allow
    assert decide(base, CallFacts("004412345", "public")).reason == r.DENY_PREFIX
    assert decide(base, CallFacts("+4412345", "public")).reason == r.DENY_PREFIX
    assert decide(base, CallFacts("1" * 13, "public")).reason == r.TOO_LONG
    assert decide(base, CallFacts("0441234567", "public")) == ACCEPT


def test_a_64_kib_number_is_rejected_as_too_long():
    assert verdict("0" * 65536).reason == r.TOO_LONG


def test_every_reason_is_a_documented_token():
    assert set(r.REASONS) == {
        "empty_number", "too_long", "bad_characters", "deny_prefix",
        "not_allowed_prefix", "scanner_user_agent", "internal_error", "register_failure", "limit",
        "invalid_number", "denied_country", "not_allowed_country", "denied_number_type",
    }


class TestPrefixSet:
    def test_matches_the_shortest_listed_prefix_of_the_number(self):
        prefixes = PrefixSet.of(["900", "9", "0044"])
        assert prefixes.match("9001") == "9"
        assert prefixes.match("00441") == "0044"
        assert prefixes.match("0045") is None

    def test_a_prefix_longer_than_the_number_does_not_match(self):
        assert PrefixSet.of(["12345"]).match("123") is None

    def test_probes_one_set_lookup_per_distinct_length_not_per_prefix(self):
        prefixes = PrefixSet.of(f"{n:05d}" for n in range(10_000))
        assert prefixes.lengths == (5,)
        assert prefixes.match("099991234") == "09999"
        assert prefixes.match("1000") is None

    def test_10000_deny_and_10000_allow_prefixes_decide_correctly(self):
        deny = [f"9{n:04d}" for n in range(10_000)]
        allow = [f"{n:04d}" for n in range(10_000)]
        rules = rules_of(deny_prefix=deny, allow_prefix=allow, destination_number_max_len=16)
        assert decide(rules, CallFacts("912341", "public")).reason == r.DENY_PREFIX
        assert decide(rules, CallFacts("123456", "public")) == ACCEPT
        assert decide(rules, CallFacts("12", "public")).reason == r.NOT_ALLOWED_PREFIX
