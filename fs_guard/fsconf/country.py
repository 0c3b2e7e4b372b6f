"""The home country FreeSWITCH already knows: vars.xml's ``default_country``.

An operator tells FreeSWITCH its country once (stock ``vars.xml``: ``<X-PRE-PROCESS
cmd="set" data="default_country=US"/>``). ``fs-guard install`` writes it into the shipped
configuration as ``dialling.region`` (``--region`` overrides it), and ``fs-guard audit``
says when fs-guard's region and FreeSWITCH's differ. Nothing falls back to it at run time:
``fs-guard test`` and ``replay`` run outside FreeSWITCH and must decide as the screen
does, so the region lives in fs-guard's configuration, written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple

from fs_guard.runtime import destinations

VARIABLE = "default_country"


@dataclass(frozen=True)
class Region:
    """A home region and where it came from, or why it cannot be one."""

    code: str  # upper case, as libphonenumber names regions
    how: str  # "--region", "vars.xml's default_country", ...
    problem: str = ""  # "": a region libphonenumber knows

    @property
    def usable(self) -> bool:
        return not self.problem


def of(value: Optional[str], how: str) -> Optional[Region]:
    """``value`` as a home region (None when it is empty), checked against libphonenumber."""
    text = (value or "").strip()
    if not text:
        return None
    code = text.upper()
    errors = destinations.region_errors(how, [code], non_geographic=False, listed=False)
    return Region(code, how, errors[0] if errors else "")


def default_country(variables: Mapping[str, str], where: str = "") -> Optional[Region]:
    """FreeSWITCH's ``default_country`` (vars.xml's preprocessor variable), or None when unset;
    ``where``: the file and line that set it."""
    return of(variables.get(VARIABLE), f"vars.xml's {VARIABLE}" + (f" ({where})" if where else ""))


def configured_regions(raw: Mapping[str, object]) -> Mapping[str, str]:
    """The ``dialling.region`` a configuration's ``fail2ban`` object sets, by where: ``""`` for
    the top level, a context's name for a context that sets its own."""
    found = {}
    top = raw.get("dialling")
    if isinstance(top, dict) and top.get("region"):
        found[""] = str(top["region"])
    contexts = raw.get("contexts")
    for name, section in (contexts.items() if isinstance(contexts, dict) else ()):
        dialling = section.get("dialling") if isinstance(section, dict) else None
        if isinstance(dialling, dict) and dialling.get("region"):
            found[str(name)] = str(dialling["region"])
    return found


def differences(regions: Mapping[str, str], freeswitch: Optional[Region]) -> List[Tuple[str, str]]:
    """(where, region) of each region of ``configured_regions`` that is not FreeSWITCH's
    ``default_country``; none when FreeSWITCH names no usable country."""
    if freeswitch is None or not freeswitch.usable:
        return []
    return [(where, code) for where, code in sorted(regions.items()) if code.upper() != freeswitch.code]


def difference(where: str, code: str, freeswitch: Region) -> str:
    return (f"dialling.region {code} ({'the top level' if not where else f'context {where}'}) is not FreeSWITCH's "
            f"default_country {freeswitch.code}: numbers in national format and emergency numbers are read as "
            f"{code.upper()}'s")


def not_set(freeswitch: Region) -> str:
    return (f"no dialling.region is set, though FreeSWITCH's default_country is {freeswitch.code}: numbers are "
            "not classified, and emergency numbers are not known as such")
