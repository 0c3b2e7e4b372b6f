"""A page opened as a person opens it: Debian's ``chromium``, headless, with a fresh profile,
no network (every host name resolves to nothing) and a time bound.

chromium missing: the tests skip, unless FS_GUARD_REQUIRE_CHROMIUM is set (CI sets it), and
then they fail (``need_chromium``).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

REQUIRE_ENV = "FS_GUARD_REQUIRE_CHROMIUM"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND")
#: Virtual time the page gets to run its scripts before the DOM or the picture is taken.
SETTLE_MS = 5_000
TIMEOUT = 120  # seconds, wall clock, for one chromium run


def need_chromium() -> str:
    """The path of chromium; skips, or fails when FS_GUARD_REQUIRE_CHROMIUM is set, when absent."""
    found = shutil.which("chromium")
    if found is None:
        reason = "chromium is not installed (apt-get install chromium)"
        if os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "no", "false"):
            pytest.fail(f"{reason} (and {REQUIRE_ENV} is set, so this is a failure, not a skip)", pytrace=False)
        pytest.skip(f"{reason}; set {REQUIRE_ENV}=1 to make this a failure")
    return found


def _run(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    profile.mkdir()
    result = subprocess.run([need_chromium(), *FLAGS, f"--user-data-dir={profile}",
                             f"--virtual-time-budget={SETTLE_MS}", *extra, page.resolve().as_uri()],
                            capture_output=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result


def dump_dom(page: Path, scratch: Path) -> str:
    """The page's DOM once its scripts have run."""
    return _run(page, scratch / "profile-dom", "--dump-dom").stdout.decode("utf-8")


def screenshot(page: Path, scratch: Path, out: Path, width: int = 1280, height: int = 2000) -> bytes:
    """A PNG of the page's top ``height`` pixels at ``width``."""
    _run(page, scratch / "profile-shot", f"--window-size={width},{height}", f"--screenshot={out}")
    return out.read_bytes()


# -- what a chart drew -------------------------------------------------------------------------


class Chart:
    """What plotly drew into one chart's SVG."""

    def __init__(self) -> None:
        self.bars = 0  # bars with an area (a zero count draws a bar of no width)
        self.markers = 0  # scatter markers
        self.texts: List[str] = []  # text drawn beside points
        self.shapes = 0  # lines and shaded spans
        self.title = ""  # the heading of the page's section the chart is in


class Charts(HTMLParser):
    """Each plotly chart of a dumped DOM, by its div's id."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, dom: str) -> None:
        super().__init__(convert_charrefs=True)
        self.charts: Dict[str, Chart] = {}
        self._stack: List[Tuple[str, str, Optional[Chart]]] = []  # (tag, class, the chart it is in)
        self._heading = ""  # the last h2's text
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        values = {name: value or "" for name, value in attrs}
        classes = values.get("class", "")
        chart = self._stack[-1][2] if self._stack else None
        if tag == "div" and "plotly-graph-div" in classes.split():
            chart = self.charts[values["id"]] = Chart()
            chart.title = self._heading
        if tag == "h2":
            self._heading = ""
        if chart is not None and tag == "path" and values.get("d"):
            parent = self._stack[-1][1].split() if self._stack else []
            if "point" in parent and _area(values["d"]):
                chart.bars += 1
            elif "point" in classes.split() and "translate(" in values.get("transform", ""):
                chart.markers += 1
            elif any("shapelayer" in c for _, c, _ in self._stack[-2:]):
                chart.shapes += 1
        if tag not in self.VOID:
            self._stack.append((tag, classes, chart))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._stack and self._stack[-1][0] == "h2":
            self._heading += data
        if self._stack and self._stack[-1][0] == "text" and self._stack[-1][2] is not None:
            if len(self._stack) > 1 and "textpoint" in self._stack[-2][1]:
                self._stack[-1][2].texts.append(data)


def _area(d: str) -> bool:
    """A bar's path ``Mx0,y0Vy1Hx1Vy0Z`` encloses an area."""
    try:
        start, rest = d[1:].split("V", 1)
        x0, y0 = (float(v) for v in start.split(","))
        y1, rest = rest.split("H", 1)
        x1 = float(rest.split("V", 1)[0])
    except ValueError:
        return False
    return abs(x1 - x0) > 0 and abs(float(y1) - y0) > 0


# -- what a picture shows ----------------------------------------------------------------------


def png_colours(data: bytes) -> Tuple[int, int, Dict[Tuple[int, ...], int]]:
    """Width, height and pixel count per colour of an 8-bit RGB(A) PNG (what chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, idat, header = 8, b"", b""
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        chunk = data[at + 8:at + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        at += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, "an 8-bit RGB(A) PNG"
    size = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * size
    previous = bytearray(stride)
    counts: Dict[Tuple[int, ...], int] = {}
    for row in range(height):
        kind = raw[row * (stride + 1)]
        line = bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - size] if i >= size else 0
            up = previous[i]
            corner = previous[i - size] if i >= size else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        for i in range(0, stride, size):
            pixel = tuple(line[i:i + 3])
            counts[pixel] = counts.get(pixel, 0) + 1
        previous = line
    return width, height, counts
