"""``fs-guard replay`` by destination: what happened to calls, per country and per number type.

Calls are classified as the screen classifies them (``rules.destination_of``, the context's
dialling convention), so only calls in a context with ``dialling.region`` are counted here.
A country's accepted calls are what a ``deny_countries`` entry for it would have stopped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from fs_guard.runtime.destinations import EMERGENCY, NOT_A_NUMBER, Destination

ACCEPTED = ""  # the outcome of an accepted call; otherwise the reason that rejected it
UNKNOWN_COUNTRY = "unknown"


@dataclass(frozen=True)
class DestinationRow:
    name: str  # a country (ISO 3166, "001" for the international networks, "unknown") or a number type
    attempts: int
    accepted: int  # let through: for a country, what denying it would have stopped
    rejected: int  # by the rules (monitor mode: would have been)
    limited: int  # by a fraud limit
    reasons: Tuple[Tuple[str, int], ...]  # rejects by reason, most first


@dataclass(frozen=True)
class DestinationsReport:
    classified: int  # calls whose number was classified
    emergency: int  # emergency calls of the home region (always let through)
    not_numbers: int  # extensions, feature codes
    countries: Tuple[DestinationRow, ...]  # the top ones, by attempts
    country_count: int
    types: Tuple[DestinationRow, ...]


class DestinationReplay:
    """Counts each classified call once, by (kind, country, type, outcome)."""

    def __init__(self) -> None:
        self._counts: Dict[Tuple[str, str, str, str], int] = {}

    def book(self, destination: Destination, outcome: Optional[str]) -> None:
        """One call: ``outcome`` is None (or "") when accepted, else the reason (``limit`` for a limit)."""
        key = (destination.kind, destination.region, destination.type, outcome or ACCEPTED)
        self._counts[key] = self._counts.get(key, 0) + 1

    def report(self, top: int = 10) -> Optional[DestinationsReport]:
        if not self._counts:
            return None
        countries: Dict[str, Counter] = {}
        types: Dict[str, Counter] = {}
        emergency = not_numbers = 0
        for (kind, region, kind_of_number, outcome), count in self._counts.items():
            if kind == EMERGENCY:
                emergency += count
                continue
            if kind == NOT_A_NUMBER:
                not_numbers += count
                continue
            countries.setdefault(region or UNKNOWN_COUNTRY, Counter())[outcome] += count
            types.setdefault(kind_of_number, Counter())[outcome] += count
        return DestinationsReport(
            classified=sum(self._counts.values()),
            emergency=emergency,
            not_numbers=not_numbers,
            countries=_rows(countries, top),
            country_count=len(countries),
            types=_rows(types, len(types)),
        )


def _rows(groups: Dict[str, Counter], top: int) -> Tuple[DestinationRow, ...]:
    rows = []
    for name, outcomes in groups.items():
        reasons = tuple(sorted(((reason, n) for reason, n in outcomes.items() if reason != ACCEPTED),
                               key=lambda item: (-item[1], item[0])))
        limited = outcomes.get("limit", 0)
        accepted = outcomes.get(ACCEPTED, 0)
        attempts = sum(outcomes.values())
        rows.append(DestinationRow(name, attempts, accepted, attempts - accepted - limited, limited, reasons))
    rows.sort(key=lambda row: (-row.attempts, row.name))
    return tuple(rows[:top])
