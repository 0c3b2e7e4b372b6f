"""The dynamic section of an ELF shared object: the libraries it needs and where it looks.

``fs-guard install`` reads mod_python3.so with it to learn which libpython FreeSWITCH
loads (the interpreter mod_python3 runs is the one it was linked against, not
necessarily ``python3`` on PATH). Read from the file, without running ``ldd``: the
section headers give ``.dynamic`` and, through its ``sh_link``, the string table its
DT_NEEDED, DT_RPATH and DT_RUNPATH entries point into.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO, List, Tuple

_MAGIC = b"\x7fELF"
_SHT_DYNAMIC = 6
_DT_NULL, _DT_NEEDED, _DT_RPATH, _DT_RUNPATH = 0, 1, 15, 29


class NotElf(Exception):
    """The file is no ELF object fs-guard can read."""


@dataclass(frozen=True)
class Dynamic:
    needed: Tuple[str, ...]
    rpath: Tuple[str, ...]  # DT_RPATH, searched before LD_LIBRARY_PATH (ignored when there is a RUNPATH)
    runpath: Tuple[str, ...]  # DT_RUNPATH


@dataclass(frozen=True)
class _Format:
    """ELFCLASS32/64 and the byte order: the layout of the header, sections and entries."""

    order: str
    wide: bool

    def unpack(self, fields: str, data: bytes, offset: int = 0) -> Tuple[int, ...]:
        return struct.unpack_from(self.order + fields, data, offset)

    @property
    def section(self) -> Tuple[str, int]:
        """sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, ... and the size."""
        return ("IIQQQQII", 64) if self.wide else ("IIIIIIII", 40)

    @property
    def entry(self) -> Tuple[str, int]:
        return ("qQ", 16) if self.wide else ("iI", 8)


def _read(handle: BinaryIO, offset: int, size: int) -> bytes:
    handle.seek(offset)
    data = handle.read(size)
    if len(data) != size:
        raise NotElf("truncated")
    return data


def _string(table: bytes, offset: int) -> str:
    end = table.find(b"\0", offset)
    return table[offset : end if end >= 0 else len(table)].decode("utf-8", "replace")


def _sections(handle: BinaryIO, fmt: _Format) -> List[Tuple[int, int, int, int]]:
    """(type, link, offset, size) of every section header."""
    header = _read(handle, 0, 64 if fmt.wide else 52)
    shoff, shentsize, shnum = (
        (fmt.unpack("Q", header, 40)[0], *fmt.unpack("HH", header, 58))
        if fmt.wide
        else (fmt.unpack("I", header, 32)[0], *fmt.unpack("HH", header, 46))
    )
    layout, size = fmt.section
    if shoff == 0 or shentsize < size:
        raise NotElf("no section headers")
    table = _read(handle, shoff, shentsize * shnum)
    found = []
    for index in range(shnum):
        _, kind, _, _, offset, length, link, _ = fmt.unpack(layout, table, index * shentsize)
        found.append((kind, link, offset, length))
    return found


def read_dynamic(path: str) -> Dynamic:
    """DT_NEEDED, DT_RPATH and DT_RUNPATH of the ELF object at ``path``; NotElf if it is none."""
    try:
        with open(path, "rb") as handle:
            ident = handle.read(16)
            if len(ident) < 16 or ident[:4] != _MAGIC or ident[4] not in (1, 2) or ident[5] not in (1, 2):
                raise NotElf("not an ELF file")
            fmt = _Format("<" if ident[5] == 1 else ">", ident[4] == 2)
            sections = _sections(handle, fmt)
            dynamic = [s for s in sections if s[0] == _SHT_DYNAMIC]
            if not dynamic:
                raise NotElf("no dynamic section: not a shared object")
            _, link, offset, size = dynamic[0]
            if link >= len(sections):
                raise NotElf("the dynamic section names no string table")
            strings = _read(handle, sections[link][2], sections[link][3])
            entries = _read(handle, offset, size)
    except OSError as exc:
        raise NotElf(str(exc)) from None
    except struct.error:
        raise NotElf("truncated") from None
    return _parse(entries, strings, fmt)


def _parse(entries: bytes, strings: bytes, fmt: _Format) -> Dynamic:
    layout, size = fmt.entry
    found: dict = {_DT_NEEDED: [], _DT_RPATH: [], _DT_RUNPATH: []}
    for start in range(0, len(entries) - size + 1, size):
        tag, value = fmt.unpack(layout, entries, start)
        if tag == _DT_NULL:
            break
        if tag in found:
            found[tag].append(_string(strings, value))

    def paths(tag: int) -> Tuple[str, ...]:
        return tuple(p for value in found[tag] for p in value.split(":") if p)

    return Dynamic(tuple(found[_DT_NEEDED]), paths(_DT_RPATH), paths(_DT_RUNPATH))
