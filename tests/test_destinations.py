"""Destinations: numbers classified with libphonenumber's real metadata (nothing mocked), rules
and limits by country and number type, and emergency numbers that nothing ever rejects."""

from __future__ import annotations

import io
import json
import random
import sys
import time
from pathlib import Path

import fsctl
import phonenumbers
import pytest
from phonenumbers import shortnumberinfo

from modpython import run_api

from fs_guard.offline import cli
from fs_guard.offline.replay import Jail, Replay
from fs_guard.offline.traces import Trace
from fs_guard.runtime import destinations, state
from fs_guard.runtime.config import ConfigError, parse_config
from fs_guard.runtime.destinations import (
    CACHE_SIZE, EMERGENCY, NOT_A_NUMBER, NUMBER, SHORT, Classifier, Dialling, classifier_for,
)
from fs_guard.runtime.rules import CallFacts, decide

T0 = 1795860000.0
OFFICE = {"sip_authorized": "true", "user_name": "1001", "domain_name": "pbx.example"}
EU = ["AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU",
      "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"]
#: The worked example of docs/destinations.md: a UK office calls only EU countries, never
#: premium rate or shared cost; 999 and 112 always go through.
UK_OFFICE = {"dialling": {"region": "GB"}, "deny_prefix": [], "destination_number_max_len": 20,
             "allow_countries": EU, "deny_number_types": ["premium_rate", "shared_cost"]}


def conf(**section):
    return parse_config(json.dumps({"fail2ban": section}), "t.json")


def classify(region, number, **dialling):
    return classifier_for(Dialling(region, **dialling)).classify(number)


# -- classification, per dialling convention: (dialled, region, type, valid, kind) ------------

UK_00 = [
    ("00442079460000", "GB", "fixed_line", True, NUMBER),
    ("02079460000", "GB", "fixed_line", True, NUMBER),
    ("0033142685300", "FR", "fixed_line", True, NUMBER),
    ("09098790000", "GB", "premium_rate", True, NUMBER),
    ("08443351234", "GB", "premium_rate", True, NUMBER),
    ("03001234567", "GB", "uan", True, NUMBER),
    ("07911123456", "GG", "mobile", True, NUMBER),  # +44 is shared with Guernsey, Jersey, Man
    ("07700900123", "GB", "unknown", False, NUMBER),  # Ofcom's drama range: never a real number
    ("00881612345678", "001", "mobile", True, NUMBER),  # an international network (satellite)
    ("00999123456", "", "unknown", False, NUMBER),  # no such country code
    ("999", "GB", "toll_free", True, EMERGENCY),
    ("112", "GB", "toll_free", True, EMERGENCY),
    ("118118", "GB", "unknown", True, SHORT),
    ("1000", "", "unknown", False, NOT_A_NUMBER),  # an extension
    ("*98", "", "unknown", False, NOT_A_NUMBER),  # a feature code
]
NANP_011 = [
    ("011442079460000", "GB", "fixed_line", True, NUMBER),
    ("12125551234", "US", "fixed_line_or_mobile", True, NUMBER),
    ("2125551234", "US", "fixed_line_or_mobile", True, NUMBER),
    ("19005551234", "US", "premium_rate", True, NUMBER),
    ("18005551234", "US", "toll_free", True, NUMBER),
    ("16135550123", "CA", "fixed_line_or_mobile", True, NUMBER),  # +1 is shared by 25 regions
    ("911", "US", "toll_free", True, EMERGENCY),
    ("411", "US", "unknown", True, SHORT),
    ("5551234", "", "unknown", False, NOT_A_NUMBER),  # seven digits: a local number, not a full one
]
OUTSIDE_LINE_9 = [  # a US PBX: 9 for an outside line
    ("912125551234", "US", "fixed_line_or_mobile", True, NUMBER),
    ("9011442079460000", "GB", "fixed_line", True, NUMBER),
    ("919005551234", "US", "premium_rate", True, NUMBER),
    ("911", "US", "toll_free", True, EMERGENCY),  # dialled without the 9 (Kari's law) ...
    ("9911", "US", "toll_free", True, EMERGENCY),  # ... or with it
    ("2125551234", "", "unknown", False, NOT_A_NUMBER),  # no 9: it does not leave the switch
]
NATIONAL_0 = [  # Germany and France dial 0 before a national number
    ("DE", "030123456", "DE", "fixed_line", True, NUMBER),
    ("DE", "09001234567", "DE", "premium_rate", True, NUMBER),
    ("DE", "0180212345678", "DE", "shared_cost", True, NUMBER),
    ("DE", "110", "DE", "toll_free", True, EMERGENCY),
    ("FR", "0899123456", "FR", "premium_rate", True, NUMBER),
    ("FR", "0810123456", "FR", "shared_cost", True, NUMBER),
    ("FR", "15", "FR", "toll_free", True, EMERGENCY),
    ("AU", "1900123456", "AU", "premium_rate", True, NUMBER),
    ("AU", "000", "AU", "toll_free", True, EMERGENCY),
]
PLUS_E164 = [
    ("+442079460000", "GB", "fixed_line", True, NUMBER),
    ("+33612345678", "FR", "mobile", True, NUMBER),
    ("+881612345678", "001", "mobile", True, NUMBER),
    ("+999", "", "unknown", False, NUMBER),
]
SIP_URI = [
    ("sip:+442079460000@gw.example;user=phone", "GB", "fixed_line", True, NUMBER),
    ("tel:+44-20-7946-0000", "GB", "fixed_line", True, NUMBER),
    ("sips:0033142685300@sbc.example", "FR", "fixed_line", True, NUMBER),
    ("sip:alice@example.com", "", "unknown", False, NOT_A_NUMBER),
]


def _shape(found):
    return found.region, found.type, found.valid, found.kind


def agrees_with_the_library(region, dialled):
    """Assert that ``dialled`` (home ``region``) is classified as libphonenumber does; True
    when it was a phone number to compare, False when there was nothing to compare."""
    found = classify(region, dialled)
    try:
        number = phonenumbers.parse(dialled, region)
    except phonenumbers.NumberParseException:
        assert not found.valid, (region, dialled)
        return False
    if found.kind != NUMBER:
        return False
    valid = phonenumbers.is_valid_number(number)
    assert (found.e164, found.type, found.valid, found.region if valid else None) == (
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.PhoneNumberType.to_string(phonenumbers.number_type(number)).lower(),
        valid, phonenumbers.region_code_for_number(number) if valid else None), (region, dialled)
    return True


class TestClassification:
    @pytest.mark.parametrize("dialled, region, kind_of_number, valid, kind", UK_00)
    def test_uk_dialling_00(self, dialled, region, kind_of_number, valid, kind):
        assert _shape(classify("GB", dialled)) == (region, kind_of_number, valid, kind)

    @pytest.mark.parametrize("dialled, region, kind_of_number, valid, kind", NANP_011)
    def test_nanp_dialling_011_and_1(self, dialled, region, kind_of_number, valid, kind):
        assert _shape(classify("US", dialled)) == (region, kind_of_number, valid, kind)

    @pytest.mark.parametrize("dialled, region, kind_of_number, valid, kind", OUTSIDE_LINE_9)
    def test_a_pbx_outside_line_9(self, dialled, region, kind_of_number, valid, kind):
        assert _shape(classify("US", dialled, outside_line="9")) == (region, kind_of_number, valid, kind)

    @pytest.mark.parametrize("home, dialled, region, kind_of_number, valid, kind", NATIONAL_0)
    def test_national_format(self, home, dialled, region, kind_of_number, valid, kind):
        assert _shape(classify(home, dialled)) == (region, kind_of_number, valid, kind)

    @pytest.mark.parametrize("dialled, region, kind_of_number, valid, kind", PLUS_E164)
    def test_a_leading_plus_is_e164(self, dialled, region, kind_of_number, valid, kind):
        assert _shape(classify("DE", dialled)) == (region, kind_of_number, valid, kind)

    @pytest.mark.parametrize("dialled, region, kind_of_number, valid, kind", SIP_URI)
    def test_sip_and_tel_uri_forms(self, dialled, region, kind_of_number, valid, kind):
        assert _shape(classify("GB", dialled)) == (region, kind_of_number, valid, kind)

    def test_the_e164_form_is_the_same_however_it_was_dialled(self):
        forms = [("GB", "00442079460000", {}), ("GB", "02079460000", {}), ("US", "011442079460000", {}),
                 ("US", "9011442079460000", {"outside_line": "9"}), ("DE", "+44 20 7946 0000", {}),
                 ("FR", "sip:+442079460000@gw", {})]
        assert {classify(home, dialled, **more).e164 for home, dialled, more in forms} == {"+442079460000"}

    def test_configured_prefixes_replace_the_regions_own(self):
        # A switch whose users dial 000 abroad and 8 for a trunk's national format.
        assert classify("GB", "00033142685300", international_prefixes=("000",)).region == "FR"
        assert not classify("GB", "00442079460000", international_prefixes=("000",)).valid
        assert classify("GB", "82079460000", national_prefix="8").e164 == "+442079460000"

    def test_a_plus_that_is_not_e164_is_dialled_as_it_stands(self):
        assert classify("GB", "+02079460000", plus_is_e164=False).e164 == "+442079460000"

    def test_hostile_text_is_not_a_phone_number(self):
        for text in ("", "\x00112", "112\n", "ip[203.0.113.9]", "+", "++44", "0" * 65536, "１１２"):
            assert classify("GB", text).kind == NOT_A_NUMBER, text


class TestTheLibrarysOwnAnswers:
    """The compiled plans give libphonenumber's own answers (parse, number_type,
    is_valid_number, region_code_for_number; is_emergency_number, short numbers)."""

    REGIONS = ("GB", "US", "CA", "DE", "FR", "IT", "AU", "IN", "BR", "AR", "JP", "MX", "JE", "FI", "ZA", "CN")

    def test_random_numbers_in_every_form(self):
        rnd = random.Random(18)
        codes = [str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE]
        compared = 0
        for region in self.REGIONS:
            metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
            idd = metadata.preferred_international_prefix or metadata.international_prefix
            for _ in range(150):
                digits = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(5, 12)))
                dialled = rnd.choice([(metadata.national_prefix or "") + digits, "+" + rnd.choice(codes) + digits,
                                      (idd if idd.isdigit() else "+") + rnd.choice(codes) + digits])
                compared += agrees_with_the_library(region, dialled)
        assert compared > 1000

    def test_numbers_near_every_regions_examples_dialled_at_home_and_from_abroad(self):
        """Every region as the home region: its example numbers of every type with their last
        digits changed (so most are valid numbers of many types), dialled in national format,
        after the region's international prefix, and with ``+``."""
        rnd = random.Random(1818)
        types = [getattr(phonenumbers.PhoneNumberType, name.upper()) for name in destinations.TYPES[:-1]]
        compared = 0
        for region in sorted(phonenumbers.SUPPORTED_REGIONS):
            metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
            idd = metadata.preferred_international_prefix or metadata.international_prefix or ""
            for kind_of_number in types:
                example = phonenumbers.example_number_for_type(region, kind_of_number)
                if example is None:
                    continue
                nsn = phonenumbers.national_significant_number(example)
                for _ in range(3):
                    cut = rnd.randint(1, min(4, len(nsn)))
                    tail = cut + rnd.choice((-1, 0, 0, 1))
                    digits = nsn[:-cut] + "".join(rnd.choice("0123456789") for _ in range(tail))
                    forms = [(metadata.national_prefix or "") + digits, f"+{example.country_code}{digits}"]
                    if idd.isdigit():
                        forms.append(f"{idd}{example.country_code}{digits}")
                    for dialled in forms:
                        compared += agrees_with_the_library(region, dialled)
        assert compared > 10000

    def test_the_librarys_example_numbers_of_every_type(self):
        types = [name for name in destinations.TYPES if name != "unknown"]
        for region in sorted(phonenumbers.SUPPORTED_REGIONS):
            for name in types:
                example = phonenumbers.example_number_for_type(region, getattr(phonenumbers.PhoneNumberType,
                                                                                 name.upper()))
                if example is None:
                    continue
                e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
                found = classify("GB", e164)
                assert (found.region, found.type) == (phonenumbers.region_code_for_number(example),
                    phonenumbers.PhoneNumberType.to_string(phonenumbers.number_type(example)).lower()), e164

    def test_emergency_and_short_numbers(self):
        for region in self.REGIONS + ("NZ", "SE", "NL", "ES", "CH", "SG"):
            for length in (2, 3, 4, 5, 6):
                for digits in {str(n).zfill(length) for n in random.Random(length).sample(
                        range(10 ** length), min(300, 10 ** length))} | {"112", "911", "999", "000", "110", "15", "17", "18", "118118"}:
                    found = classify(region, digits)
                    assert found.emergency == shortnumberinfo.is_emergency_number(digits, region), (region, digits)
                    try:
                        parsed = phonenumbers.parse(digits, region)
                    except phonenumbers.NumberParseException:
                        continue  # e.g. MX 099: the library reads 09 as an international prefix first
                    assert (found.kind == SHORT) == (not found.emergency and
                                                      shortnumberinfo.is_valid_short_number_for_region(parsed, region)
                                                      ), (region, digits)

    def test_no_emergency_number_is_longer_than_its_listed_lengths(self):
        """The classifier (and the screen, without destination rules) matches only strings up to
        the longest listed length of a region's emergency numbers: the patterns never match more."""
        try:
            from re import _parser as sre_parser  # Python 3.11 and newer
        except ImportError:  # pragma: no cover
            import sre_parse as sre_parser  # type: ignore[no-redef]
        checked = 0
        for region in sorted(phonenumbers.SUPPORTED_SHORT_REGIONS):
            emergency = phonenumbers.PhoneMetadata.short_metadata_for_region(region).emergency
            if emergency is None or not emergency.national_number_pattern:
                continue
            longest = sre_parser.parse(emergency.national_number_pattern).getwidth()[1]
            assert emergency.possible_length and longest <= max(emergency.possible_length), region
            checked += 1
        assert checked > 200

    def test_an_emergency_number_is_an_exact_match_never_a_prefix(self):
        # libphonenumber's connects_to_emergency_number would call this one an emergency call.
        for region, number in (("GB", "9994420794600"), ("US", "9114420794600"), ("FR", "1124420794600")):
            assert shortnumberinfo.connects_to_emergency_number(number, region)
            assert classify(region, number).kind != EMERGENCY


class TestCache:
    def test_an_attacker_dialling_random_numbers_cannot_grow_it(self):
        classifier = Classifier(Dialling("GB"))
        rnd = random.Random(7)
        for _ in range(3 * CACHE_SIZE):
            classifier.classify("00" + str(rnd.randrange(10 ** 11, 10 ** 12)))
        assert classifier.cache_info().currsize == CACHE_SIZE

    def test_a_long_string_is_answered_without_being_cached(self):
        classifier = Classifier(Dialling("GB"))
        assert classifier.classify("1" * 65536).kind == NOT_A_NUMBER
        assert classifier.cache_info().currsize == 0

    def test_a_reload_with_the_same_dialling_keeps_the_warm_cache(self):
        first = conf(dialling={"region": "GB"}, deny_number_types=["premium_rate"])
        again = conf(dialling={"region": "GB"}, deny_number_types=["premium_rate", "shared_cost"])
        assert again.base.classifier is first.base.classifier

    def test_the_library_is_imported_once_and_survives_mod_python3s_reload_of_the_screen(self, write_config, call):
        write_config(UK_OFFICE)
        library = sys.modules.get("phonenumbers")
        call("09098790000")
        classifier = state.CONFIG.current().base.classifier
        hits = classifier.cache_info().hits
        for _ in range(3):  # each call re-executes fs_guard.screen: the classifier and its cache stay
            assert call("09098790000").hangupCause() == "CALL_REJECTED"
        assert classifier.cache_info().hits == hits + 3
        assert sys.modules["phonenumbers"] is library is not None


# -- the rules ----------------------------------------------------------------------------

class TestRules:
    def test_the_documented_worked_example_is_the_one_tested_here(self):
        documented = json.loads((Path(__file__).parent.parent / "docs" / "examples" / "uk-office.json").read_text())
        assert documented == {"fail2ban": UK_OFFICE}

    def test_the_uk_office_worked_example(self):
        rules = conf(**UK_OFFICE).base
        table = [
            ("00442079460000", None), ("02079460000", None), ("0033142685300", None), ("004930123456", None),
            ("0012125551234", "not_allowed_country"), ("09098790000", "denied_number_type"),
            ("08443351234", "denied_number_type"), ("0033899123456", "denied_number_type"),
            ("0049180212345678", "denied_number_type"), ("00881612345678", "not_allowed_country"),
            ("999", None), ("112", None), ("1000", None),
        ]
        verdicts = [(number, decide(rules, CallFacts(number, "default"))) for number, _ in table]
        assert [(number, None if verdict.accept else verdict.reason) for number, verdict in verdicts] == table

    def test_each_destination_rule_has_its_reason_in_the_documented_order(self):
        rules = conf(dialling={"region": "GB"}, deny_prefix=["0090"], reject_invalid_numbers=True,
                     destination_number_max_len=20,
                     deny_countries=["FR", "US"], allow_countries=["FR", "DE"], deny_number_types=["mobile"],
                     deny_user_agent=["scanner"]).base
        cases = [
            ("0090212345678", "deny_prefix"),  # the prefix rules come first
            ("07700900123", "invalid_number"),
            ("0033142685300", "denied_country"),  # denied beats allowed
            ("0012125551234", "denied_country"),
            ("0034912345678", "not_allowed_country"),
            ("004915123456789", "denied_number_type"),
            ("02079460000", "scanner_user_agent"),  # the user agent comes last
        ]
        assert [decide(rules, CallFacts(number, "public", None, "scanner")).reason for number, _ in cases] == [
            reason for _, reason in cases]

    def test_extensions_and_feature_codes_are_left_to_the_other_rules(self):
        rules = conf(dialling={"region": "GB"}, deny_prefix=[], allow_countries=["FR"], reject_invalid_numbers=True,
                     deny_number_types=["unknown"]).base
        for number in ("1000", "*98", "2001"):
            assert decide(rules, CallFacts(number, "default")).accept, number

    def test_invalid_numbers_pass_unless_asked(self):
        assert decide(conf(dialling={"region": "GB"}, deny_prefix=[]).base, CallFacts("07700900123", "x")).accept
        assert decide(conf(dialling={"region": "GB"}, deny_prefix=[], reject_invalid_numbers=True).base,
                      CallFacts("07700900123", "x")).reason == "invalid_number"

    def test_a_context_overrides_the_rules_and_the_dialling_key_by_key(self):
        config = conf(dialling={"region": "US", "outside_line": "9"}, deny_prefix=[],
                      deny_number_types=["premium_rate"],
                      contexts={"lab": {"dialling": {"region": "GB"}, "deny_number_types": []}})
        assert decide(config.rules_for("default"), CallFacts("919005551234", "default")).reason == \
            "denied_number_type"
        lab = config.rules_for("lab")
        assert lab.classifier.dialling == Dialling("GB", outside_line="9")
        assert decide(lab, CallFacts("909098790000", "lab")).accept

    def test_a_rejected_call_writes_a_ban_line_with_its_country_and_type(self, write_config, call, ban_log):
        write_config(UK_OFFICE)
        assert call("09098790000", ip="203.0.113.9").hangupCause() == "CALL_REJECTED"
        assert call("0012125551234", ip="203.0.113.9").hangupCause() == "CALL_REJECTED"
        first, second = ban_log.lines()
        assert first.endswith(' reason=denied_number_type context=public dest="09098790000" ua="" '
                              'country=GB type=premium_rate')
        assert second.endswith(' reason=not_allowed_country context=public dest="0012125551234" ua="" '
                               'country=US type=fixed_line_or_mobile')
        counters = state.STATS.snapshot()
        assert (counters["rejected_country.GB"], counters["rejected_country.US"]) == (1, 1)

    def test_monitor_mode_logs_what_it_would_reject(self, write_config, call, ban_log):
        write_config({**UK_OFFICE, "monitor": True})
        assert call("09098790000").hangupCause() == "NONE"
        assert state.STATS.snapshot()["monitor_would_reject"] == 1
        assert ban_log.lines() == []
        assert any("would reject reason=denied_number_type" in line and "type=premium_rate" in line
                   for line in fsctl.log_lines("notice"))


class TestConfigErrors:
    def errors(self, **section):
        with pytest.raises(ConfigError) as caught:
            conf(**section)
        return caught.value.errors

    def test_a_region_that_is_not_iso_3166_says_what_was_meant(self):
        assert self.errors(dialling={"region": "UK"}) == (
            "fail2ban.dialling.region: 'UK' is not an ISO 3166 region code libphonenumber knows; did you mean 'GB'?",)
        assert self.errors(dialling={"region": "GB"}, deny_countries=["DE", "gb", "XK9"]) == (
            "fail2ban.deny_countries[1]: 'gb' is not an ISO 3166 region code libphonenumber knows; did you mean 'GB'?",
            "fail2ban.deny_countries[2]: 'XK9' is not an ISO 3166 region code libphonenumber knows; did you mean 'XK'?",
        )

    def test_a_number_type_that_libphonenumber_does_not_have(self):
        (error,) = self.errors(dialling={"region": "GB"}, deny_number_types=["premium"])
        assert error.startswith("fail2ban.deny_number_types[0]: 'premium' is not a number type (one of premium_rate,")
        assert error.endswith("did you mean 'premium_rate'?")

    def test_errors_in_a_context_name_its_path(self):
        assert self.errors(dialling={"region": "GB"}, contexts={"public": {"allow_countries": ["EU"]}}) == (
            "fail2ban.contexts.public.allow_countries[0]: 'EU' is not an ISO 3166 region code libphonenumber knows",)

    def test_destination_rules_need_a_home_region(self):
        assert self.errors(deny_number_types=["premium_rate"]) == (
            'fail2ban: deny_number_types need the home country, dialling.region (an ISO 3166 code such as "GB" '
            'or "US")',)
        assert self.errors(contexts={"default": {"deny_countries": ["CU"]}}) == (
            'fail2ban.contexts.default: deny_countries need the home country, dialling.region (an ISO 3166 code '
            'such as "GB" or "US")',)

    def test_limits_by_destination_are_checked_too(self):
        assert self.errors(dialling={"region": "GB"}, limits=[
            {"name": "a", "by": "account", "countries": ["UK"], "number_types": ["prem"], "window": 60,
             "calls": {"critical": 1}}]) == (
            "fail2ban.limits[0].countries[0]: 'UK' is not an ISO 3166 region code libphonenumber knows; "
            "did you mean 'GB'?",
            "fail2ban.limits[0].number_types[0]: 'prem' is not a number type (one of premium_rate, toll_free, "
            "shared_cost, voip, personal_number, pager, uan, voicemail, fixed_line, mobile, fixed_line_or_mobile, "
            "unknown)",
        )
        assert self.errors(limits=[{"name": "a", "by": "account", "window": 60, "distinct_countries": {"critical": 3}}]
                           ) == ('fail2ban.limits[0]: countries, number_types and distinct_countries need '
                                 'dialling.region (the home country, e.g. "GB")',)
        assert self.errors(dialling={"region": "GB"}, limits=[
            {"name": "a", "by": "account", "window": 60, "distinct_countries": {"critical": 3},
             "distinct_numbers": {"critical": 9}}]) == (
            "fail2ban.limits[0]: a limit counts distinct_numbers or distinct_countries, not both (make two limits)",)

    def test_the_schema_refuses_prefixes_that_are_not_digits(self):
        assert self.errors(dialling={"region": "GB", "outside_line": "9#"}) == (
            "fail2ban.dialling.outside_line: '9#' does not match '^[0-9]{1,4}$'",)


# -- emergency numbers ----------------------------------------------------------------------

#: Every kind of rule, each set so that it would reject an emergency number of any region.
REJECT_EVERYTHING = {
    "destination_number_max_len": 1,
    "allowed_characters": "*#",
    "deny_prefix": [str(d) for d in range(10)],
    "allow_prefix": ["+"],
    "deny_user_agent": ["phone"],
    "reject_invalid_numbers": True,
    "deny_number_types": list(destinations.TYPES),
    "allow_countries": ["001"],
}
EMERGENCY_NUMBERS = [("GB", "999"), ("GB", "112"), ("US", "911"), ("FR", "15"), ("FR", "112"), ("DE", "110"),
                     ("AU", "000"), ("NZ", "111"), ("IN", "112")]


class TestEmergencyNumbersAlwaysGoThrough:
    @pytest.mark.parametrize("region, number", EMERGENCY_NUMBERS)
    def test_no_rule_rejects_one(self, region, number):
        for rules in (conf(dialling={"region": region}, **REJECT_EVERYTHING).base,
                      conf(dialling={"region": region}, deny_countries=[region], **REJECT_EVERYTHING).base):
            verdict = decide(rules, CallFacts(number, "public", None, "phone"))
            assert verdict.accept and verdict.emergency
        # Without a home region nothing knows it is an emergency number: the rules apply.
        assert decide(conf(destination_number_max_len=1).base, CallFacts(number, "public")).reason == "too_long"

    @pytest.mark.parametrize("region, number", EMERGENCY_NUMBERS)
    def test_no_rule_limit_or_block_rejects_one_on_a_live_call(self, region, number, write_config, call, ban_log):
        write_config({"dialling": {"region": region}, "deny_prefix": [], "limits": [
            {"name": "nothing", "by": "source_ip", "window": 60, "calls": {"critical": 0}, "action": "reject",
             "block_for": 3600},
            {"name": "no-account", "by": "account", "concurrent": {"critical": 0}, "action": "reject"},
            {"name": "no-country", "by": "account", "window": 60, "distinct_countries": {"critical": 0},
             "action": "reject"},
            {"name": "no-type", "by": "account", "number_types": list(destinations.TYPES), "window": 60,
             "calls": {"critical": 0}, "action": "reject"},
        ]})
        # A first call is rejected and blocks the address (and its account) for an hour ...
        assert call("02079460000", ip="198.51.100.7", **OFFICE).hangupCause() == "CALL_REJECTED"
        assert state.TALLY.has_blocks
        # ... and the emergency call from that blocked address goes through.
        assert call(number, ip="198.51.100.7", ua="phone", **OFFICE).hangupCause() == "NONE"
        counters = state.STATS.snapshot()
        assert counters["calls_emergency"] == 1
        assert any(f'emergency call let through context=public dest="{number}" ip="198.51.100.7"' in line
                   for line in fsctl.log_lines("notice"))
        assert len(ban_log.lines()) == 1  # the first call's only

    def test_every_rule_through_fs_guard_test(self, tmp_path, capsys):
        path = tmp_path / "c.json"
        path.write_text(json.dumps({"fail2ban": {"dialling": {"region": "GB"}, **REJECT_EVERYTHING}}))
        assert cli.main(["test", "999", "--config", str(path)]) == 0
        out = capsys.readouterr().out
        assert out.startswith('ACCEPT "999" context=public (an emergency number of GB: no rule, limit or block '
                              'rejects it)\n')
        assert "destination:   emergency number of GB" in out


# -- limits by destination ----------------------------------------------------------------------

FANOUT = {"name": "country-fanout", "by": "account", "window": 600, "distinct_countries": {"critical": 3},
          "action": "reject", "block_for": 3600}
PREMIUM = {"name": "premium", "by": "account", "number_types": ["premium_rate"], "countries": ["GB"],
           "window": 3600, "calls": {"critical": 1}, "action": "reject"}


class TestLimitsByDestination:
    def test_an_account_calling_a_fourth_country_in_ten_minutes_is_blocked(self, write_config, call, alerts):
        write_config({"dialling": {"region": "GB"}, "deny_prefix": [], "destination_number_max_len": 20,
                      "limits": [FANOUT]})
        numbers = ["0033142685300", "0033142685301", "004930123456", "02079460000", "1000", "0034912345678"]
        causes = [call(number, context="default", **OFFICE).hangupCause() for number in numbers]
        # France twice, Germany, Great Britain: three countries; an extension is no country; Spain is the fourth.
        assert causes == ["NONE"] * 5 + ["CALL_REJECTED"]
        (alert,) = alerts()
        assert (alert["metric"], alert["count"], alert["threshold"], alert["action"]) == (
            "distinct_countries", "4", "3", "block")
        assert (alert["destination-country"], alert["destination-type"]) == ("ES", "fixed_line")
        assert call("02079460000", context="default", **OFFICE).hangupCause() == "CALL_REJECTED"  # blocked

    def test_a_limit_selects_calls_by_country_and_type(self, write_config, call):
        write_config({"dialling": {"region": "GB"}, "deny_prefix": [], "destination_number_max_len": 20,
                      "limits": [PREMIUM]})
        assert call("09098790000", context="default", **OFFICE).hangupCause() == "NONE"
        assert call("0033899123456", context="default", **OFFICE).hangupCause() == "NONE"  # premium, not GB
        assert call("02079460000", context="default", **OFFICE).hangupCause() == "NONE"  # GB, not premium
        assert call("09098790001", context="default", **OFFICE).hangupCause() == "CALL_REJECTED"

    def test_without_limits_by_destination_a_long_number_is_not_classified(self, write_config, call):
        write_config({"dialling": {"region": "GB"}, "deny_prefix": [],
                      "limits": [{"name": "rate", "by": "account", "window": 60, "calls": {"critical": 100}}]})
        classifier = classifier_for(Dialling("GB"))
        looked_up = classifier.cache_info()
        call("02079460000", context="default", **OFFICE)
        assert classifier.cache_info()[:2] == looked_up[:2]  # no hit, no miss: not classified
        call("999", context="default", **OFFICE)
        assert classifier.cache_info()[:2] != looked_up[:2]  # short enough to be an emergency number

    def test_a_call_the_rules_reject_is_not_classified_for_the_limits(self, write_config, call):
        write_config({"dialling": {"region": "GB"}, "deny_prefix": ["0044"], "limits": [FANOUT]})
        classifier = classifier_for(Dialling("GB"))
        looked_up = classifier.cache_info()
        assert call("00442079460417", context="default", **OFFICE).hangupCause() == "CALL_REJECTED"
        assert classifier.cache_info()[:2] == looked_up[:2]
        assert call("02079460417", context="default", **OFFICE).hangupCause() == "NONE"
        assert classifier.cache_info().misses == looked_up.misses + 1  # accepted: the limit reads its country


# -- replay --------------------------------------------------------------------------------

LIVE = [  # (seconds, number, source address, account)
    (0, "0033142685300", "198.51.100.10", "1001@pbx.example"),
    (1, "09098790000", "198.51.100.10", "1001@pbx.example"),
    (2, "004930123456", "198.51.100.10", "1001@pbx.example"),
    (3, "999", "198.51.100.10", "1001@pbx.example"),
    (4, "02079460000", "198.51.100.10", "1001@pbx.example"),
    (5, "0034912345678", "198.51.100.10", "1001@pbx.example"),
    (6, "112", "198.51.100.10", "1001@pbx.example"),
    (7, "0012125551234", "203.0.113.50", "1002@pbx.example"),
    (8, "0039061234567", "198.51.100.10", "1001@pbx.example"),
    (9, "08443351234", "203.0.113.50", "1002@pbx.example"),
]


def test_replay_decides_and_bans_as_the_live_screen_does(tmp_path, write_config, call, ban_log, monkeypatch):
    section = {**UK_OFFICE, "allow_countries": EU + ["US"], "limits": [FANOUT]}
    write_config(section)
    now = [T0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    live, records = [], []
    for at, number, ip, account in LIVE:
        now[0] = T0 + at
        user, domain = account.split("@")
        before = state.STATS.snapshot()
        session = call(number, context="default", ip=ip, sip_authorized="true", user_name=user, domain_name=domain)
        after = state.STATS.snapshot()
        live.append(next((name.split(".", 1)[1] for name in after if name.startswith("rejected.")
                          and after[name] != before.get(name, 0)), "accept"))
        records.append({"time": T0 + at, "ip": ip, "context": "default", "number": number, "account": account,
                        "uuid": session.uuid})
    assert live == ["accept", "denied_number_type", "accept", "accept", "accept", "limit", "accept", "accept",
                    "limit", "denied_number_type"]
    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(json.dumps(record) + "\n" for record in records))
    out = io.StringIO()
    engine = Replay(state.CONFIG.current(), Jail(maxretry=5, findtime=180.0, bantime=86400.0), out)
    engine.feed(Trace(str(trace)).read())
    report = engine.report()
    assert out.getvalue().splitlines() == ban_log.lines()
    assert dict(report.by_reason) == {"denied_number_type": 2, "limit": 2}
    found = report.destinations
    assert (found.classified, found.emergency, found.country_count) == (10, 2, 6)
    rows = {row.name: row for row in found.countries}
    assert (rows["GB"].attempts, rows["GB"].accepted, rows["GB"].rejected, rows["GB"].limited) == (3, 1, 2, 0)
    assert (rows["ES"].limited, rows["IT"].limited) == (1, 1)
    assert {row.name: row.attempts for row in found.types}["premium_rate"] == 2


# -- status and check-config -------------------------------------------------------------------

def test_status_shows_the_numbering_plans_version_and_rejects_by_country(write_config, call):
    write_config(UK_OFFICE)
    call("09098790000")
    call("0012125551234")
    call("0012125551235")
    call("999")
    text = run_api("fs_guard.status")
    assert f"numbering plans: libphonenumber metadata {phonenumbers.__version__} " in text
    assert "rejected by destination country: US 2, GB 1\n" in text
    data = json.loads(run_api("fs_guard.status json"))
    assert data["destinations"]["rejected_by_country"] == {"US": 2, "GB": 1}
    assert data["counters"]["calls_emergency"] == 1
    assert not any(name.startswith("rejected_country.") for name in data["counters"])


def test_check_config_shows_the_dialling_the_emergency_numbers_and_the_metadata_version(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"fail2ban": {**UK_OFFICE, "contexts": {"lab": {"dialling": {"outside_line": "9"}}}}}))
    assert cli.main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"numbering plans: libphonenumber metadata {phonenumbers.__version__} " in out
    assert "  dialling:          home GB, international prefix the region's own, national prefix the region's " \
           "own, + is E.164\n" in out
    assert ", outside line 9, " in out
    assert "  emergency:         112, 999 and every other emergency number of GB always go through\n" in out
    assert "  deny number types: premium_rate, shared_cost\n" in out
