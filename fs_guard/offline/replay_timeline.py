"""What happened when, in ``fs-guard replay --html``: attempts by outcome and fraud-limit
hits per time bin, on the traces' own clock.

Recorded only when a page is asked for (``Replay(..., timeline=Timeline())``): the plain
replay pays one ``is None`` test per attempt. Memory is bounded whatever the span: past
``MAX_BINS`` bins the bin width grows to the next of ``widths()`` (each a multiple of the
one before, so bins merge whole), and the page shows at most ``SHOWN_BINS`` bars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterator, List, Tuple

#: The outcomes of an attempt, in the order of a bin's counts (and of the chart's stack).
ACCEPTED, REJECTED, LIMITED, MONITORED, REGISTER_FAILED = range(5)
SERIES = ("accepted", "rejected by the rules", "rejected by a fraud limit", "monitor mode would reject",
          "register failures")
#: Bins kept while recording; past this the width grows and bins merge.
MAX_BINS = 20_000
#: Bars the page shows at most on the attempts chart.
SHOWN_BINS = 300
_STEPS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 4 * 3600, 86400)


def widths() -> Iterator[int]:
    """Bin widths in seconds, each a multiple of every one before: 1 s .. 1 d, then days doubling."""
    yield from _STEPS
    width = _STEPS[-1]
    while True:
        width *= 2
        yield width


@dataclass(frozen=True)
class HitBin:
    """A fraud limit's hits of one level on one metric within one bin."""

    start: float
    hits: int
    highest: int  # the highest count among them (the call included)
    key: str  # the key that reached it


@dataclass(frozen=True)
class HitSeries:
    limit: str
    metric: str
    level: str
    bins: Tuple[HitBin, ...]  # in time order, only bins with hits


@dataclass(frozen=True)
class TimelineReport:
    width: int  # seconds per bar of ``counts``
    starts: Tuple[float, ...]  # each bar's start, from the first attempt's bin to the last's, gaps included
    counts: Tuple[Tuple[int, ...], ...]  # per outcome in SERIES order: one count per bar
    hit_width: int  # seconds per bin of the hits (finer than the bars: hits are few)
    hits: Tuple[HitSeries, ...]


class Timeline:
    """Counts per bin as the replay decides; ``report()`` rebins them for the page."""

    def __init__(self, max_bins: int = MAX_BINS) -> None:
        self._widths = widths()
        self.width = next(self._widths)
        self._max_bins = max_bins
        self._bins: Dict[int, List[int]] = {}  # bin number (time // width) -> counts in SERIES order
        # (limit, metric, level, bin number) -> [hits, highest count, its key]
        self._hits: Dict[Tuple[str, str, str, int], List] = {}

    def mark(self, when: float, outcome: int) -> None:
        """One attempt at ``when`` with ``outcome`` (ACCEPTED, REJECTED, ...)."""
        number = int(when // self.width)
        counts = self._bins.get(number)
        if counts is None:
            if len(self._bins) >= self._max_bins:
                self._coarsen()
                number = int(when // self.width)
            counts = self._bins.setdefault(number, [0] * len(SERIES))
        counts[outcome] += 1

    def hit(self, when: float, limit: str, metric: str, level: str, count: int, key: str) -> None:
        """A fraud limit's hit: ``count`` of ``metric`` for ``key`` passed its ``level`` threshold."""
        slot = (limit, metric, level, int(when // self.width))
        found = self._hits.get(slot)
        if found is None:
            self._hits[slot] = [1, count, key]
            return
        found[0] += 1
        if count > found[1]:
            found[1], found[2] = count, key

    def _coarsen(self) -> None:
        """The next width up; every bin merges into the one that now holds its start."""
        old = self.width
        self.width = next(self._widths)
        self._bins = _merge_counts(self._bins, self.width // old)
        hits: Dict[Tuple[str, str, str, int], List] = {}
        for (limit, metric, level, number), (count, highest, key) in sorted(self._hits.items()):
            slot = (limit, metric, level, number * old // self.width)
            found = hits.get(slot)
            if found is None:
                hits[slot] = [count, highest, key]
                continue
            found[0] += count
            if highest > found[1]:
                found[1], found[2] = highest, key
        self._hits = hits

    def report(self, shown_bins: int = SHOWN_BINS) -> TimelineReport:
        """Bars no narrower than recorded and at most ``shown_bins`` of them; hits as recorded."""
        width = self.width
        bins = self._bins
        if bins:
            span = max(bins) - min(bins) + 1  # in recorded bins
            for width in widths():
                if width >= self.width and math.ceil(span * self.width / width) <= shown_bins:
                    break
            bins = _merge_counts(bins, width // self.width)
        first, last = (min(bins), max(bins)) if bins else (0, -1)
        empty = [0] * len(SERIES)
        rows = [bins.get(number, empty) for number in range(first, last + 1)]
        series: Dict[Tuple[str, str, str], List[HitBin]] = {}
        for (limit, metric, level, number), (count, highest, key) in sorted(self._hits.items()):
            found = HitBin(float(number * self.width), count, highest, key)
            series.setdefault((limit, metric, level), []).append(found)
        return TimelineReport(
            width=width,
            starts=tuple(float(number * width) for number in range(first, last + 1)),
            counts=tuple(tuple(row[outcome] for row in rows) for outcome in range(len(SERIES))),
            hit_width=self.width,
            hits=tuple(HitSeries(limit, metric, level, tuple(found))
                       for (limit, metric, level), found in series.items()),
        )


def _merge_counts(bins: Dict[int, List[int]], factor: int) -> Dict[int, List[int]]:
    """Bins ``factor`` times wider: each old bin adds into the new bin that holds its start."""
    if factor == 1:
        return bins
    merged: Dict[int, List[int]] = {}
    for number, counts in bins.items():
        into = merged.get(number // factor)
        if into is None:
            merged[number // factor] = list(counts)
        else:
            for outcome, count in enumerate(counts):
                into[outcome] += count
    return merged

