"""Where a dialled number goes: country, number type, validity, emergency, from libphonenumber.

A context's dialling convention (``Dialling``: home region, international prefixes, national
prefix, outside-line prefix, whether a leading ``+`` is E.164) turns each dialled string into
one frozen ``Destination``:

- ``emergency``: an emergency number of the home region (libphonenumber's short-number data,
  exact match only: ``112`` is, ``1124420...`` is not), dialled as is or after the
  outside-line prefix; no rule or limit ever rejects it;
- ``short``: another short number of the home region (``118118``, ``411``); its type is
  ``premium_rate`` or ``toll_free`` when libphonenumber knows its cost;
- ``number``: a phone number, with its E.164 form, region (ISO 3166, or ``001`` for the
  non-geographic international networks such as +881/+882/+883), type and validity;
- ``not_a_number``: an extension, a feature code (``*98``), a string too short to be a
  number of the home region, or text that is no number at all.

libphonenumber's Python port parses and types a number in 100 to 400 µs; a screen has a few.
So its metadata (the numbering plans: which digits make a valid premium-rate number in which
country) is compiled here once per country calling code into precompiled patterns and read
with the library's own algorithm (``phonenumberutil.parse``, ``number_type``,
``region_code_for_number``; tests check the answers against the library's). The library is
imported once per process (this module is never reloaded by mod_python3; only
``fs_guard.screen`` is), and each classifier keeps a bounded cache of recent answers: an
attacker dialling random numbers replaces entries, never adds memory.
"""

from __future__ import annotations

import difflib
import functools
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, List, NamedTuple, Optional, Pattern, Sequence, Tuple

NUMBER = "number"
EMERGENCY = "emergency"
SHORT = "short"
NOT_A_NUMBER = "not_a_number"
KINDS = (NUMBER, EMERGENCY, SHORT, NOT_A_NUMBER)

UNKNOWN = "unknown"
#: libphonenumber's number types as configuration names them, in its order of precedence.
TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
         "fixed_line", "mobile", "fixed_line_or_mobile", UNKNOWN)
#: The "region" of the international networks (+800, +808, +870, +881, +882, +883, +888, +979).
NON_GEOGRAPHIC = "001"
#: Answers kept per classifier (per dialling convention); the least recently used goes first.
CACHE_SIZE = 4096
#: A longer dialled string is not a phone number (E.164 has at most 15 digits); never cached.
MAX_DIALLED = 64
#: Codes people write that are not ISO 3166 alpha-2, and the code they mean.
ALIASES = {"UK": "GB", "EL": "GR", "EN": "GB", "USA": "US", "UAE": "AE"}

_MIN_NSN, _MAX_NSN = 2, 17  # libphonenumber's bounds on a national significant number
_DIALLED = re.compile(r"\+?[0-9]+")
_SEPARATORS = str.maketrans("", "", " -.()/")
_POSSIBLE, _LOCAL_ONLY, _TOO_SHORT, _TOO_LONG, _INVALID_LENGTH = range(5)


class Destination(NamedTuple):
    """One dialled string, classified.

    A NamedTuple, not a dataclass: one is built for every number never seen before, and
    ``_destination`` builds a tuple in C (a frozen dataclass sets its fields one by one)."""

    kind: str
    e164: str = ""  # "+442079460000"; "" unless kind is number
    region: str = ""  # ISO 3166 alpha-2, NON_GEOGRAPHIC, or "" when unknown
    type: str = UNKNOWN
    valid: bool = False

    @property
    def emergency(self) -> bool:
        return self.kind == EMERGENCY

    def describe(self) -> str:
        """One line for ``fs-guard test`` and the console."""
        if self.kind == NOT_A_NUMBER:
            return "not a phone number (extension, feature code or text)"
        if self.kind == NUMBER:
            return (f"number {self.e164 or '(no E.164 form)'} region={self.region or 'unknown'} type={self.type} "
                    f"{'valid' if self.valid else 'INVALID'}")
        return f"{self.kind} number of {self.region} type={self.type}"


#: ``_destination((kind, e164, region, type, valid))``: a Destination without a Python-level call.
_destination: Callable[[Tuple[str, str, str, str, bool]], Destination] = functools.partial(tuple.__new__, Destination)
NOT_A_NUMBER_DESTINATION = Destination(NOT_A_NUMBER)
#: A number that is no number of any country (no such country code, too short or too long).
_NO_NUMBER = Destination(NUMBER)


class _Library:
    """phonenumbers, imported on first use (once per process), and its metadata by name."""

    def __init__(self) -> None:
        import phonenumbers
        from phonenumbers.phonemetadata import PhoneMetadata

        self.version: str = phonenumbers.__version__
        self.regions: FrozenSet[str] = frozenset(phonenumbers.SUPPORTED_REGIONS)
        self.region_codes: Dict[int, Tuple[str, ...]] = dict(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
        self.metadata = PhoneMetadata
        self.country_code_for_region: Callable[[str], int] = phonenumbers.country_code_for_region

    def for_region(self, region: str) -> Any:
        if region == NON_GEOGRAPHIC:
            return None
        return self.metadata.metadata_for_region(region, None)

    def for_code(self, code: int, region: str) -> Any:
        if region == NON_GEOGRAPHIC:
            return self.metadata.metadata_for_nongeo_region(code, None)
        return self.metadata.metadata_for_region(region, None)


_library: Optional[_Library] = None
_library_lock = threading.Lock()


def library() -> _Library:
    global _library
    if _library is None:
        with _library_lock:
            if _library is None:
                _library = _Library()
    return _library


def metadata_version() -> str:
    """The installed libphonenumber metadata's version (``pip install -U phonenumberslite`` refreshes it)."""
    return library().version


# -- the numbering plans, compiled --------------------------------------------------------

def _compile(pattern: str) -> Pattern[str]:
    """A metadata pattern, matched against ASCII digits only (``_clean``): with ``re.ASCII``
    a ``\\d`` is a range test, not a Unicode database lookup per digit."""
    return re.compile(pattern, re.ASCII)


class _Desc:
    """A number description (libphonenumber's PhoneNumberDesc): possible lengths and a pattern."""

    __slots__ = ("lengths", "pattern")

    def __init__(self, desc: Any) -> None:
        pattern = getattr(desc, "national_number_pattern", None) if desc is not None else None
        self.pattern: Optional[Pattern[str]] = _compile(pattern) if pattern else None
        self.lengths: FrozenSet[int] = frozenset(getattr(desc, "possible_length", None) or ())

    def matches(self, nsn: str) -> bool:
        """``_is_number_matching_desc``: a possible length (when listed), then the whole pattern."""
        if self.pattern is None or (self.lengths and len(nsn) not in self.lengths):
            return False
        return self.pattern.fullmatch(nsn) is not None


def _of_length(desc: Any, size: int) -> Optional[str]:
    """A number description's pattern if a number of ``size`` digits may match it (a possible
    length, when lengths are listed: ``_is_number_matching_desc``), else None."""
    pattern = getattr(desc, "national_number_pattern", None) if desc is not None else None
    lengths = getattr(desc, "possible_length", None) or () if desc is not None else ()
    return pattern if pattern and (not lengths or size in lengths) else None


def _types_by_length(general: Any, descs: Sequence[Tuple[str, Any]]) -> Dict[int, Pattern[str]]:
    """``_number_type_helper`` as one pattern per number length (the number types' own lengths
    decided once, not per number): the general description as a lookahead, then the
    descriptions of that length in the library's order, each a named group; the first
    alternative that matches the whole number names its type (one regex call, not twelve)."""
    compiled: Dict[str, Pattern[str]] = {}
    found: Dict[int, Pattern[str]] = {}
    for size in range(_MAX_NSN + 1):
        viable = _of_length(general, size)
        parts = [f"(?P<{name}>{pattern})" for name, pattern in ((name, _of_length(desc, size)) for name, desc in descs)
                 if pattern]
        if viable is None or not parts:
            continue
        text = f"(?=(?:{viable})\\Z)(?:{'|'.join(parts)})"
        pattern = compiled.get(text)
        if pattern is None:
            pattern = compiled[text] = _compile(text)
        found[size] = pattern
    return found


#: Length verdicts are tabled for strings up to this size; a longer one is too long everywhere.
_TABLE = 128


def _length_verdict(size: int, lengths: Tuple[int, ...], local: FrozenSet[int]) -> int:
    """``_test_number_length`` against a general description's possible lengths."""
    if not lengths or lengths[0] == -1:
        return _INVALID_LENGTH
    if size in local:
        return _LOCAL_ONLY
    if size in lengths:
        return _POSSIBLE
    if size < lengths[0]:
        return _TOO_SHORT
    return _TOO_LONG if size > lengths[-1] else _INVALID_LENGTH


class _Plan:
    """One region's numbering plan (PhoneMetadata), compiled for ``_number_type_helper``."""

    def __init__(self, region: str, metadata: Any) -> None:
        self.region = region
        self.code: int = metadata.country_code
        general = metadata.general_desc
        self.general = _compile(general.national_number_pattern) if general.national_number_pattern else None
        lengths = tuple(general.possible_length or ())
        local = frozenset(general.possible_length_local_only or ())
        #: ``_test_number_length`` of a string of each size, looked up rather than computed.
        self.verdicts = bytes(_length_verdict(size, lengths, local) for size in range(_TABLE))
        self.beyond = _length_verdict(_TABLE, lengths, local)
        self.mobile = _Desc(metadata.mobile)
        self.same_mobile = bool(metadata.same_mobile_and_fixed_line_pattern)
        names = list(TYPES[:9]) + ([] if self.same_mobile else ["mobile"])
        #: By number length (parse's bounds: 2 to 17 digits); a length without one is of no type.
        self.typed = _types_by_length(general, [(name, getattr(metadata, name)) for name in names])
        self.leading = _compile(metadata.leading_digits) if metadata.leading_digits else None
        prefix = metadata.national_prefix_for_parsing
        self.national_prefix = _compile(prefix) if prefix else None
        self.transform: Optional[str] = metadata.national_prefix_transform_rule or None
        idd = metadata.international_prefix
        self.idd = _compile(idd) if idd else None
        #: The international prefix when it is plain digits ("00", "011"): a ``startswith``.
        self.idd_text: Optional[str] = idd if idd and idd.isdigit() else None

    def viable(self, nsn: str) -> bool:
        return self.general is not None and self.general.fullmatch(nsn) is not None

    def number_type(self, nsn: str) -> str:
        pattern = self.typed.get(len(nsn))
        match = pattern.fullmatch(nsn) if pattern is not None else None
        if match is None:
            return UNKNOWN
        name = match.lastgroup or UNKNOWN
        if name == "fixed_line" and (self.same_mobile or self.mobile.matches(nsn)):
            return "fixed_line_or_mobile"
        return name

    def length(self, nsn: str) -> int:
        """``_test_number_length`` against the general description."""
        size = len(nsn)
        return self.verdicts[size] if size < _TABLE else self.beyond

    def strip_national_prefix(self, number: str, possible: bool = False) -> str:
        """``_maybe_strip_national_prefix_carrier_code``: the number without its national prefix
        (and carrier code), unless that would make a viable number unviable; ``possible``: and,
        as ``parse`` goes on, only if what is left has a possible length here."""
        pattern = self.national_prefix
        if not number or pattern is None:
            return number
        match = pattern.match(number)
        if match is None:
            return number
        groups = match.groups()
        if self.transform is None or not groups or groups[-1] is None:
            stripped = number[match.end():]
        else:
            stripped = pattern.sub(self.transform, number, count=1)
        general = self.general
        if general is not None and general.fullmatch(number) and not general.fullmatch(stripped):
            return number  # the number was viable, and is not without the prefix
        if possible and self.length(stripped) in (_TOO_SHORT, _LOCAL_ONLY, _INVALID_LENGTH):
            return number
        return stripped


class _CountryCode:
    """The regions sharing one calling code (NANP's +1 has 25), main region first."""

    def __init__(self, code: int, plans: Sequence[_Plan]) -> None:
        self.code = code
        self.plus = f"+{code}"
        self.plans = tuple(plans)
        self.main = self.plans[0] if self.plans else None

    def destination(self, nsn: str) -> Destination:
        """A national significant number of this code: ``region_code_for_number``, then
        ``number_type`` and ``is_valid_number`` in the region found."""
        plans = self.plans
        e164 = self.plus + nsn
        if len(plans) == 1:
            kind = plans[0].number_type(nsn)
            return _destination((NUMBER, e164, plans[0].region, kind, kind != UNKNOWN))
        for plan in plans:
            if plan.leading is not None:
                if plan.leading.match(nsn):
                    kind = plan.number_type(nsn)
                    return _destination((NUMBER, e164, plan.region, kind, kind != UNKNOWN))
                continue
            kind = plan.number_type(nsn)
            if kind != UNKNOWN:
                return _destination((NUMBER, e164, plan.region, kind, True))
        return _destination((NUMBER, e164, self.main.region if self.main is not None else "", UNKNOWN, False))


_codes: Dict[int, _CountryCode] = {}
_plans: Dict[str, Optional[_Plan]] = {}


def _plan(region: str) -> Optional[_Plan]:
    plan = _plans.get(region)
    if plan is None and region not in _plans:
        metadata = library().for_region(region)
        plan = _plans[region] = _Plan(region, metadata) if metadata is not None else None
    return plan


def _country_code(code: int) -> Optional[_CountryCode]:
    """The compiled plans of a calling code, compiled on first use (a few hundred µs, once)."""
    found = _codes.get(code)
    if found is None:
        lib = library()
        regions = lib.region_codes.get(code)
        if regions is None:
            return None
        plans = []
        for region in regions:
            metadata = lib.for_code(code, region)
            if metadata is not None:
                plans.append(_plan(region) if region != NON_GEOGRAPHIC else _Plan(region, metadata))
        found = _codes[code] = _CountryCode(code, [p for p in plans if p is not None])
    return found


def warm() -> None:
    """Compile every calling code's plan now (what the benchmark measures; memory of the metadata)."""
    for code in list(library().region_codes):
        _country_code(code)


# -- configuration ------------------------------------------------------------------------

@dataclass(frozen=True)
class Dialling:
    """How this switch's users dial: what the ``dialling`` setting compiles to."""

    region: str
    international_prefixes: Tuple[str, ...] = ()  # empty: the region's own (libphonenumber's pattern)
    national_prefix: Optional[str] = None  # None: the region's own
    outside_line: str = ""  # "9": a PBX's outside line; only numbers after it leave the switch
    plus_is_e164: bool = True


def region_errors(path: str, codes: Sequence[str], non_geographic: bool = True, listed: bool = True) -> List[str]:
    """Errors for codes that are not regions libphonenumber knows, each with what was meant.
    ``non_geographic``: ``001`` (the international networks) counts as a region; ``listed``:
    ``path`` is a list, and each error names the entry's index."""
    known = library().regions | ({NON_GEOGRAPHIC} if non_geographic else set())
    errors = []
    for index, code in enumerate(codes):
        if code in known:
            continue
        where = f"{path}[{index}]" if listed else path
        errors.append(f"{where}: {code!r} is not an ISO 3166 region code libphonenumber knows{_suggest(code, known)}")
    return errors


def type_errors(path: str, names: Sequence[str]) -> List[str]:
    errors = []
    for index, name in enumerate(names):
        if name not in TYPES:
            errors.append(f"{path}[{index}]: {name!r} is not a number type (one of {', '.join(TYPES)})"
                          f"{_suggest(name, TYPES)}")
    return errors


def _suggest(text: str, known: Any) -> str:
    upper = text.strip().upper()
    meant = ALIASES.get(upper) or (upper if upper in known else None) or (text.strip().lower() if text.strip().lower()
                                                                          in known else None)
    if meant is None:
        close = difflib.get_close_matches(text, sorted(known), n=1)
        meant = close[0] if close else None
    return f"; did you mean {meant!r}?" if meant else ""


_classifiers: Dict[Dialling, "Classifier"] = {}
#: Dialling conventions whose classifiers (and caches) are kept across reloads.
KEPT_CLASSIFIERS = 64


def classifier_for(dialling: Dialling) -> "Classifier":
    """The classifier of a dialling convention, shared by the contexts (and reloads) that use
    it, so a reload keeps its cache warm."""
    found = _classifiers.get(dialling)
    if found is None:
        if len(_classifiers) >= KEPT_CLASSIFIERS:
            _classifiers.clear()
        found = _classifiers[dialling] = Classifier(dialling)
    return found


# -- the classifier -----------------------------------------------------------------------

class Classifier:
    """Classifies dialled strings for one dialling convention; ``classify`` is the hot path.

    A number never seen before costs a few regex calls and a handful of Python calls (the
    screen's reject path pays it for every new number an attacker dials): what can be decided
    once (the home plan, its calling code, the emergency pattern, the national-prefix rule)
    is decided here, not per number."""

    def __init__(self, dialling: Dialling) -> None:
        lib = library()
        self.dialling = dialling
        self.region = dialling.region
        home = _plan(dialling.region)
        if home is None:
            raise ValueError(f"no numbering plan for region {dialling.region!r}")
        self.home = home
        self.code = lib.country_code_for_region(dialling.region)
        self._home_code = str(self.code)
        country = _country_code(self.code)
        if country is None:
            raise ValueError(f"no numbering plan for calling code {self.code}")
        self._home_country = country
        self._codes = {str(code): code for code in lib.region_codes}
        self._idds = tuple(sorted(dialling.international_prefixes, key=len, reverse=True))
        self._outside = dialling.outside_line
        self._national_prefix = dialling.national_prefix
        short = lib.metadata.short_metadata_for_region(dialling.region, None)
        self._emergency = _Desc(short.emergency if short is not None else None)
        self._emergency_call = Destination(EMERGENCY, "", self.region, "toll_free", True)
        self._short_general = _Desc(short.general_desc if short is not None else None)
        self._short_code = _Desc(short.short_code if short is not None else None)
        self._short_costs = tuple((name, _Desc(getattr(short, name, None))) for name in ("premium_rate", "toll_free")
                                  ) if short is not None else ()
        #: The longest string ``_short`` can accept (its lengths, when listed); longer ones skip it.
        self._short_max = -1 if self._short_general.pattern is None else max(self._short_general.lengths,
                                                                              default=_TABLE)
        #: The longest string that may be an emergency number as dialled (its listed lengths, with
        #: the outside-line prefix); a longer one is not matched against the pattern.
        self._emergency_len = max(self._emergency.lengths, default=_TABLE) + len(dialling.outside_line)
        lengths = set(self._emergency.lengths) | set(self._short_general.lengths)
        #: The longest short or emergency number, outside-line prefix included; longer strings
        #: need classifying only for the destination rules, never to find an emergency call.
        self.short_len = max(lengths, default=0) + len(dialling.outside_line)
        self._cached = functools.lru_cache(maxsize=CACHE_SIZE)(self._classify)

    def classify(self, dialled: Optional[str]) -> Destination:
        if not dialled or len(dialled) > MAX_DIALLED:
            return NOT_A_NUMBER_DESTINATION
        return self._cached(dialled)

    def cache_info(self) -> Any:
        return self._cached.cache_info()

    def _classify(self, dialled: str) -> Destination:
        if dialled.isdigit() and dialled.isascii():  # digits as dialled: most numbers
            return self._digits(dialled, True)
        text = _clean(dialled)
        if text is None:
            return NOT_A_NUMBER_DESTINATION
        if text[0] == "+":
            if self.dialling.plus_is_e164:
                return self._international(text[1:])
            text = text[1:]
        return self._digits(text, text == dialled)

    def _digits(self, digits: str, as_dialled: bool) -> Destination:
        """Digits dialled without an E.164 ``+``: an emergency number (only ``as_dialled``: no
        URI, no separator), then, after the outside-line prefix, a short number of the home
        region, a number after an international prefix, or a national number."""
        outside = self._outside
        emergency = self._emergency.pattern if as_dialled and len(digits) <= self._emergency_len else None
        if outside:
            after = digits[len(outside):] if digits.startswith(outside) else None
            if emergency is not None and (emergency.fullmatch(digits) or (after and emergency.fullmatch(after))):
                return self._emergency_call
            if after is None:
                return NOT_A_NUMBER_DESTINATION  # an internal number: it does not leave the switch
            digits = after
        elif emergency is not None and emergency.fullmatch(digits):
            return self._emergency_call
        prefix = self._national_prefix  # as parse reads it, for the short and the national number
        if prefix is None:
            national = self.home.strip_national_prefix(digits, possible=True)
        else:
            national = digits[len(prefix):] if prefix and digits.startswith(prefix) else digits
        if len(national) <= self._short_max:
            short = self._short(national)
            if short is not None:
                return short
        rest = self._after_idd(digits)
        if rest is not None:
            return self._international(rest)
        if digits.startswith(self._home_code):
            found = self._without_prefix(digits)
            if found is not None:
                return found
        if self.home.length(national) in (_TOO_SHORT, _LOCAL_ONLY):
            return NOT_A_NUMBER_DESTINATION  # too short for a full number here: an extension
        if not _MIN_NSN <= len(national) <= _MAX_NSN:
            return _NO_NUMBER
        return self._home_country.destination(national)

    def _short(self, digits: str) -> Optional[Destination]:
        """A valid short number of the home region (``is_valid_short_number_for_region`` of
        the number as ``parse`` reads it: ``digits`` without the national prefix)."""
        if not (self._short_general.matches(digits) and self._short_code.matches(digits)):
            return None
        cost = next((name for name, desc in self._short_costs if desc.matches(digits)), UNKNOWN)
        return Destination(SHORT, "", self.region, cost, True)

    def _without_prefix(self, digits: str) -> Optional[Destination]:
        """A number that starts with the home country code, dialled without a prefix
        (``4420...``, ``1212...``): read as such when the library would (it is not viable as a
        national number but is without the code, or it is too long for one)."""
        home = self.home
        potential = home.strip_national_prefix(digits[len(self._home_code):])
        if (not home.viable(digits) and home.viable(potential)) or home.length(digits) == _TOO_LONG:
            return self._number(self.code, potential)
        return None

    def _after_idd(self, digits: str) -> Optional[str]:
        """The digits after an international prefix, or None (``_parse_prefix_as_idd``)."""
        if self._idds:
            for prefix in self._idds:
                if digits.startswith(prefix):
                    return digits[len(prefix):]
            return None
        home = self.home
        if home.idd_text is not None:
            if not digits.startswith(home.idd_text):
                return None
            rest = digits[len(home.idd_text):]
        else:
            match = home.idd.match(digits) if home.idd is not None else None
            if match is None:
                return None
            rest = digits[match.end():]
        if rest[:1] == "0":
            return None  # country codes never start with 0: not an international prefix
        return rest

    def _international(self, digits: str) -> Destination:
        """Digits after ``+`` or an international prefix: a country code, then the number."""
        if len(digits) <= _MIN_NSN or digits[0] == "0":
            return _NO_NUMBER
        codes = self._codes
        for size in (1, 2, 3):
            code = codes.get(digits[:size])
            if code is not None:
                return self._number(code, digits[size:])
        return _NO_NUMBER

    def _number(self, code: int, nsn: str) -> Destination:
        """``parse`` from the country code on: strip the national prefix of the country's main
        plan, then locate and type the number."""
        country = _country_code(code)
        if country is None or country.main is None:
            return _NO_NUMBER
        nsn = country.main.strip_national_prefix(nsn, possible=True)
        if not _MIN_NSN <= len(nsn) <= _MAX_NSN:
            return _NO_NUMBER
        return country.destination(nsn)


def _clean(dialled: str) -> Optional[str]:
    """The ``+`` and digits of a dialled string (a SIP or tel URI's user part, separators
    dropped), or None when it is not a phone number's text."""
    text = dialled
    scheme, colon, rest = text.partition(":")
    if colon and scheme.lower() in ("sip", "sips", "tel"):
        text = rest.split("@", 1)[0].split(";", 1)[0]
    text = text.translate(_SEPARATORS)
    if not _DIALLED.fullmatch(text):
        return None
    return text
