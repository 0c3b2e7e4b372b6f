"""FreeSWITCH's XML preprocessor, reproduced, with every line traced back to its file.

FreeSWITCH never parses ``freeswitch.xml`` as it is: ``preprocess()`` in
src/switch_xml.c first rewrites it line by line, and the XML parser only sees the
result. What a configuration *means* (which context comes first, which params a
profile has) can only be read from that result, so install, audit and the tests all
read a configuration through this module. Rules reproduced (switch_xml.c):

- ``$${name}`` is replaced on every line by the preprocessor variable ``name``, as set
  so far by ``<X-PRE-PROCESS cmd="set" data="name=value"/>`` (an unset name becomes
  empty). Variables the core computes at start-up (``local_ip_v4``, ``base_dir``...)
  are unknown here and are left as written; ``conf_dir`` is the directory given.
- A line containing ``<include>``, ``</include>`` or ``<?`` is dropped whole.
- A line with ``<X-PRE-PROCESS cmd=... data=.../>`` is replaced by what the command
  produces (nothing for ``set``; the included files for ``include``), even inside an
  XML comment. A line that mentions X-PRE-PROCESS without ``<`` before it is dropped.
- ``include`` takes a glob; a relative pattern is relative to the directory of the file
  that contains the line; matching files are included in sorted order, each with its
  own directory as the base of its own includes. No match is an error FreeSWITCH logs.
- ``<!--#include "file"-->``, ``<!--#set "a=b"-->`` and ``<!--#comment`` work the same way.
- ``exec``, ``exec-set``, ``env-set`` and ``stun-set`` run programs or ask the network at
  start-up: they are recorded, not run.
"""

from __future__ import annotations

import glob as _glob
import os
import re
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Mapping, Optional, Protocol, Tuple
from xml.parsers import expat

#: Variables the FreeSWITCH core sets itself before reading any XML (switch_core.c).
CORE_VARIABLES = frozenset(
    """hostname local_ip_v4 local_mask_v4 local_ip_v6 switch_serial base_dir recordings_dir
    sound_prefix sounds_dir log_dir run_dir db_dir mod_dir htdocs_dir script_dir temp_dir
    grammar_dir certs_dir storage_dir cache_dir core_uuid nat_public_addr nat_private_addr
    nat_type data_dir localstate_dir fonts_dir images_dir""".split()
)
MAX_DEPTH = 100  # switch_xml.c gives up deeper than this
ROOT_FILE = "freeswitch.xml"

_VAR = re.compile(r"\$\$\{([^{}]*)\}")
_PRE = re.compile(r"x-pre-process", re.IGNORECASE)


@dataclass(frozen=True)
class Origin:
    """A line of a source file (1-based)."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Directive:
    """A preprocessor command met on the way: what it was, where, and its argument."""

    command: str
    data: str
    origin: Origin


class Source(Protocol):
    """Where the preprocessor reads files: the disk, or the disk with pending edits."""

    def read(self, path: str) -> Optional[str]: ...

    def glob(self, pattern: str) -> List[str]: ...


class Disk:
    def read(self, path: str) -> Optional[str]:
        try:
            with open(path, "rb") as handle:
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return None

    def glob(self, pattern: str) -> List[str]:
        return sorted(_glob.glob(pattern))


DISK = Disk()


@dataclass(frozen=True)
class Preprocessed:
    """The text FreeSWITCH's XML parser would see, and where each of its lines came from."""

    text: str
    origins: Tuple[Origin, ...]  # origins[n - 1] is the source of output line n
    variables: Mapping[str, str]
    set_at: Mapping[str, Origin]  # where each variable was (last) set
    files: Tuple[str, ...]  # every file read, in order
    missing: Tuple[Directive, ...]  # includes that matched no readable file
    skipped: Tuple[Directive, ...]  # exec/env-set/stun-set...: not run

    def origin(self, line: int) -> Origin:
        if 1 <= line <= len(self.origins):
            return self.origins[line - 1]
        return self.origins[-1] if self.origins else Origin("", 0)


class _Run:
    """One preprocessing run: output so far, variables, what was met."""

    def __init__(self, source: Source, variables: Mapping[str, str]) -> None:
        self.source = source
        self.vars: Dict[str, str] = dict(variables)
        self.set_at: Dict[str, Origin] = {}
        self.out: List[str] = []
        self.origins: List[Origin] = []
        self.at_line_start = True
        self.files: List[str] = []
        self.missing: List[Directive] = []
        self.skipped: List[Directive] = []

    def emit(self, text: str, origin: Origin) -> None:
        if not text:
            return
        if self.at_line_start:
            self.origins.append(origin)
        # A chunk is one source line or the tail of one: at most one newline, at its end.
        self.origins.extend(origin for _ in range(text.count("\n", 0, len(text) - 1)))
        self.out.append(text)
        self.at_line_start = text.endswith("\n")

    def expand(self, line: str) -> str:
        if "$${" not in line:
            return line

        def value(match: "re.Match[str]") -> str:
            name = match.group(1)
            if name in self.vars:
                return self.vars[name]
            return match.group(0) if name in CORE_VARIABLES else ""

        return _VAR.sub(value, line)

    def command(self, cmd: str, data: str, cwd: str, origin: Origin, depth: int) -> None:
        cmd = cmd.lower()
        if cmd == "set":
            name, sep, val = data.partition("=")
            if sep:
                name, val = name.rstrip(" "), val.lstrip(" ")
                self.vars[name] = val
                self.set_at[name] = origin
        elif cmd == "include":
            self.include(cwd, data, origin, depth + 1)
        else:
            self.skipped.append(Directive(cmd, data, origin))

    def include(self, cwd: str, pattern: str, origin: Origin, depth: int) -> None:
        full = os.path.normpath(pattern if os.path.isabs(pattern) else os.path.join(cwd, pattern))
        matches = self.source.glob(full) or [full]  # glob(GLOB_NOCHECK): no match tries the pattern
        for path in matches:
            if depth > MAX_DEPTH or not self.file(path, depth):
                self.missing.append(Directive("include", pattern, origin))

    def file(self, path: str, depth: int) -> bool:
        text = self.source.read(path)
        if text is None:
            return False
        self.files.append(path)
        cwd = os.path.dirname(path)
        in_comment = False
        for number, line in enumerate(_lines(text), 1):
            origin = Origin(path, number)
            raw = line
            line = self.expand(line)
            if "<include>" in raw or "</include>" in raw or "<?" in raw:
                continue
            if in_comment:
                end = line.find("-->")
                if end < 0:
                    continue
                in_comment = False
                line = line[end + 3 :]
            found = _PRE.search(line)
            if found:
                if found.start() > 0 and line[found.start() - 1] == "<":
                    parsed = _pre_process_args(line[found.end() :])
                    if parsed:
                        self.command(parsed[0], parsed[1], cwd, origin, depth)
                continue
            start = line.find("<!--#")
            if start >= 0:
                in_comment = self.hash_comment(line, start, cwd, origin, depth)
                continue
            self.emit(line, origin)
        return True

    def hash_comment(self, line: str, start: int, cwd: str, origin: Origin, depth: int) -> bool:
        """``<!--#cmd "arg"-->``; returns True when the comment goes on past this line."""
        self.emit(line[:start], origin)
        body = line[start + 5 :]
        end = body.find("-->")
        if end >= 0:
            self.emit(body[end + 3 :], origin)
            body = body[:end]
        body = body.split("\r", 1)[0].split("\n", 1)[0]
        cmd, sep, arg = body.partition(" ")
        if sep:
            quoted = re.search(r'"([^"]*)"', arg)
            if quoted:
                arg = quoted.group(1)
            if cmd.lower() != "comment":
                self.command(cmd, arg, cwd, origin, depth)
        return end < 0


def _lines(text: str) -> Iterator[str]:
    """Lines with their newline, as switch_fp_read_dline reads them; CRLF read as LF."""
    text = text.replace("\r\n", "\n")
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start : end + 1]
        start = end + 1


def _quoted_after(text: str, name: str) -> Optional[Tuple[str, str]]:
    """switch_xml.c's attribute scan: NAME, then '=', then a quoted value; (value, rest)."""
    at = text.lower().find(name)
    if at < 0:
        return None
    eq = text.find("=", at + len(name))
    if eq < 0:
        return None
    quote = text.find('"', eq)
    if quote < 0:
        return None
    close = text.find('"', quote + 1)
    if close < 0:
        return text[quote + 1 :], ""
    return text[quote + 1 : close], text[close + 1 :]


def _pre_process_args(text: str) -> Optional[Tuple[str, str]]:
    cmd = _quoted_after(text, "cmd")
    if cmd is None:
        return None
    data = _quoted_after(cmd[1], "data")
    if data is None:
        return None
    return cmd[0], data[0]


def preprocess(
    conf_dir: str,
    root: str = ROOT_FILE,
    source: Source = DISK,
    variables: Optional[Mapping[str, str]] = None,
) -> Preprocessed:
    """Preprocess ``conf_dir/root`` as FreeSWITCH does at start-up and on ``reloadxml``."""
    conf_dir = os.path.abspath(conf_dir)
    run = _Run(source, {"conf_dir": conf_dir, **(variables or {})})
    run.include(conf_dir, root, Origin(os.path.join(conf_dir, root), 0), 0)
    return Preprocessed(
        text="".join(run.out),
        origins=tuple(run.origins),
        variables=dict(run.vars),
        set_at=dict(run.set_at),
        files=tuple(run.files),
        missing=tuple(run.missing),
        skipped=tuple(run.skipped),
    )


@dataclass(frozen=True)
class Element:
    """An element of the preprocessed document, with where its start and end tags are."""

    tag: str
    attrs: Mapping[str, str]
    children: Tuple["Element", ...]
    start: Origin
    end: Origin  # the end tag; the start tag again for an empty element written <x/>
    self_closing: bool = field(default=False, compare=False)

    def get(self, name: str, default: str = "") -> str:
        return self.attrs.get(name, default)

    def find(self, tag: str, **attrs: str) -> Optional["Element"]:
        return next(self.iter_children(tag, **attrs), None)

    def findall(self, tag: str, **attrs: str) -> List["Element"]:
        return list(self.iter_children(tag, **attrs))

    def iter_children(self, tag: str, **attrs: str) -> Iterator["Element"]:
        for child in self.children:
            if child.tag == tag and all(child.attrs.get(k) == v for k, v in attrs.items()):
                yield child

    def path(self, *steps: str) -> List["Element"]:
        """Descendants reached by following child tags ``steps`` in order."""
        found = [self]
        for step in steps:
            found = [child for node in found for child in node.iter_children(step)]
        return found

    def iter(self) -> Iterator["Element"]:
        yield self
        for child in self.children:
            yield from child.iter()


class XmlError(Exception):
    """The preprocessed document is not well-formed; ``origin`` is where, in its source."""

    def __init__(self, message: str, origin: Origin) -> None:
        self.origin = origin
        super().__init__(f"{origin}: {message}")


_BARE_AMPERSAND = re.compile(r"&(?!(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#x[0-9A-Fa-f]+);)")
_QUOTED_VALUE = re.compile(r'(=[ \t]*")([^"\n]*)(")')


def _as_strict_xml(text: str) -> str:
    """What FreeSWITCH's lenient parser (ezxml) accepts, in a form expat accepts too.

    ezxml takes a bare ``&`` and a ``<`` inside an attribute value (``expression="^<sip:"``)
    literally; escaping them changes no line.
    """
    text = _BARE_AMPERSAND.sub("&amp;", text)
    return _QUOTED_VALUE.sub(lambda m: m.group(1) + m.group(2).replace("<", "&lt;") + m.group(3), text)


def parse_text(text: str, name: str) -> Element:
    """An XML text that comes from no file (what ``fs_cli -x "xml_locate ..."`` prints);
    every element is traced to line n of ``name``."""
    origins = tuple(Origin(name, number) for number in range(1, text.count("\n") + 2))
    return parse(Preprocessed(text, origins, {}, {}, (), (), ()))


def parse(doc: Preprocessed) -> Element:
    """The element tree of a preprocessed document, every element traced to its source."""
    parser = expat.ParserCreate()
    data = _as_strict_xml(doc.text).encode("utf-8")
    stack: List[Tuple[str, Dict[str, str], List[Element], Origin]] = []
    done: List[Element] = []

    def start(tag: str, attrs: Dict[str, str]) -> None:
        stack.append((tag, attrs, [], doc.origin(parser.CurrentLineNumber)))

    def end(tag: str) -> None:
        name, attrs, children, origin = stack.pop()
        closing = doc.origin(parser.CurrentLineNumber)
        empty = not data.startswith(b"</", parser.CurrentByteIndex)  # <x/> has no end tag
        element = Element(name, attrs, tuple(children), origin, closing, empty)
        (stack[-1][2] if stack else done).append(element)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise XmlError(expat.errors.messages[exc.code], doc.origin(exc.lineno)) from None
    if not done:
        raise XmlError("no root element", doc.origin(1))
    return done[0]

