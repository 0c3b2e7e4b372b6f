"""Small textual edits of an operator's XML files that keep everything else as it was.

Re-serialising a FreeSWITCH file through an XML library would lose its comments,
indentation and quoting, and would break X-PRE-PROCESS lines (the preprocessor works on
lines, not elements). Each edit here inserts or changes whole lines next to an element
whose line the preprocessor map (``fs_guard.fsconf.fsxml``) has already found.
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple


class EditError(Exception):
    """The file does not look the way the edit expects; nothing was changed."""


def newline_of(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _line_start(text: str, line: int) -> int:
    """Offset of the first character of line ``line`` (1-based)."""
    offset = 0
    for _ in range(line - 1):
        offset = text.find("\n", offset) + 1
        if offset == 0:
            raise EditError(f"no line {line}")
    return offset


def _comments(text: str) -> List[Tuple[int, int]]:
    return [m.span() for m in re.finditer(r"<!--.*?-->", text, re.DOTALL)]


def _outside_comments(text: str, pattern: "re.Pattern[str]", start: int) -> Optional["re.Match[str]"]:
    spans = _comments(text)
    for match in pattern.finditer(text, start):
        if not any(a <= match.start() < b for a, b in spans):
            return match
    return None


def _indent_at(text: str, offset: int) -> str:
    begin = text.rfind("\n", 0, offset) + 1
    return re.match(r"[ \t]*", text[begin:]).group(0)


def _step(indent: str) -> str:
    return "\t" if indent.startswith("\t") else "  "


def start_tag(tag: str, name: Optional[str] = None) -> "re.Pattern[str]":
    """A start tag ``<tag ...>``, with attribute name="``name``" when given."""
    if name is None:
        return re.compile(rf"<{tag}\b[^>]*>")
    return re.compile(rf"""<{tag}\b[^>]*\bname\s*=\s*(["']){re.escape(name)}\1[^>]*>""")


def insert_after_start_tag(text: str, line: int, tag: "re.Pattern[str]", new_line: str) -> str:
    """Put ``new_line`` on a line of its own right after the start tag found from ``line``.

    The new line gets the indentation of a child of that element. Anything that followed
    the tag on its line moves to the next line, because the preprocessor replaces a whole
    X-PRE-PROCESS line, whatever else is on it.
    """
    begin = _line_start(text, line)
    match = _outside_comments(text, tag, begin)
    if match is None or match.group(0).endswith("/>"):
        raise EditError(f"no {tag.pattern} at or after line {line}")
    nl = newline_of(text)
    indent = _indent_at(text, match.start())
    child = indent + _step(indent) + new_line
    line_end = text.find("\n", match.end())
    rest = text[match.end() : line_end if line_end >= 0 else len(text)]
    if rest.strip():
        return text[: match.end()] + nl + child + nl + indent + _step(indent) + text[match.end() :].lstrip(" \t")
    if line_end < 0:
        return text + nl + child
    return text[: line_end + 1] + child + nl + text[line_end + 1 :]


def insert_child(text: str, start_line: int, end_line: int, tag: str, new_line: str) -> str:
    """Add ``new_line`` as the last child of the ``tag`` element starting at ``start_line``.

    ``end_line`` is the line of its end tag (equal to ``start_line`` for ``<tag/>``).
    """
    nl = newline_of(text)
    begin = _line_start(text, start_line)
    opening = _outside_comments(text, start_tag(tag), begin)
    if opening is None:
        raise EditError(f"no <{tag}> at or after line {start_line}")
    indent = _indent_at(text, opening.start())
    child = indent + _step(indent) + new_line
    if opening.group(0).endswith("/>"):
        replacement = opening.group(0)[:-2].rstrip() + ">" + nl + child + nl + indent + f"</{tag}>"
        return text[: opening.start()] + replacement + text[opening.end() :]
    end_begin = _line_start(text, end_line)
    closing = _outside_comments(text, re.compile(rf"</{tag}\s*>"), max(end_begin, opening.end()))
    if closing is None:
        raise EditError(f"no </{tag}> at or after line {end_line}")
    line_begin = text.rfind("\n", 0, closing.start()) + 1
    if not text[line_begin : closing.start()].strip():
        return text[:line_begin] + child + nl + text[line_begin:]
    return text[: closing.start()] + nl + child + nl + indent + text[closing.start() :]


def uncomment_line(text: str, element: "re.Pattern[str]") -> Optional[str]:
    """Turn a line ``<!-- ELEMENT -->`` into ``ELEMENT``; None when there is no such line.

    A line inside a larger comment block is left alone: uncommenting it would break the block.
    """
    pattern = re.compile(rf"^([ \t]*)<!--[ \t]*({element.pattern})[ \t]*-->[ \t]*(?=\r?$)", re.MULTILINE)
    spans = _comments(text)
    for match in pattern.finditer(text):
        opens = match.start() + len(match.group(1))
        if any(a < opens < b for a, b in spans):
            continue
        return text[: match.start()] + match.group(1) + match.group(2) + text[match.end() :]
    return None
