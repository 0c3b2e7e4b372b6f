"""Where mod_python3 is and which Python it runs.

mod_python3 embeds the Python it was linked against (its DT_NEEDED libpython), which
need not be ``python3`` on PATH; that Python imports fs-guard with FreeSWITCH's
script directory first on ``sys.path`` (mod_python3.c sets PYTHONPATH to the process's
PYTHONPATH followed by script_dir before Py_Initialize). Install finds the module in
the layout's module directory, reads the library from its dynamic section, finds that
library the way the loader would and the interpreter of the same installation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sysconfig
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from fs_guard.fsconf import elf

MODULE_FILE = "mod_python3.so"
PACKAGED_CONF_DIR = "/etc/freeswitch"
#: Debian/Ubuntu packages and RHEL-family RPMs (freeswitch.spec: %{_libdir}/freeswitch/mod).
PACKAGED_SCRIPT_DIR = "/usr/share/freeswitch/scripts"
PACKAGED_MOD_DIRS = ("/usr/lib/freeswitch/mod", "/usr/lib64/freeswitch/mod")
#: libpythonX.Y[flags].so...: the version and ABI flags (d debug, t free-threaded).
_LIBPYTHON = re.compile(r"^libpython(\d+\.\d+)([a-z]*)\.so(?:\.|$)")
_PROBE_VERSION = "import sys; print('%d.%d%s' % (sys.version_info[0], sys.version_info[1], getattr(sys, 'abiflags', '')))"
PROBE_TIMEOUT = 30.0


class PythonNotFound(Exception):
    """mod_python3 or its Python cannot be found; the message says what to pass."""


@dataclass(frozen=True)
class Layout:
    """FreeSWITCH's script and module directories for a configuration directory."""

    script_dir: str
    mod_dirs: Tuple[str, ...]
    how: str


def layout(conf_dir: str) -> Layout:
    """The directories FreeSWITCH's build puts next to ``conf_dir`` (configure.ac, freeswitch.spec).

    ``./configure`` without --prefix: /usr/local/freeswitch/{conf,scripts,mod}; with a
    prefix (FHS): PREFIX/etc/freeswitch, PREFIX/share/freeswitch/scripts,
    PREFIX/lib/freeswitch/mod; the packages: /etc/freeswitch, /usr/share/freeswitch/scripts,
    /usr/lib/freeswitch/mod (Debian) or /usr/lib64/freeswitch/mod (RPM).
    """
    conf_dir = os.path.abspath(conf_dir)
    parent = os.path.dirname(conf_dir)
    prefix = os.path.dirname(parent)
    if conf_dir == PACKAGED_CONF_DIR:
        return Layout(PACKAGED_SCRIPT_DIR, PACKAGED_MOD_DIRS, "the packaged FreeSWITCH layout")
    if os.path.basename(conf_dir) == "freeswitch" and os.path.basename(parent) == "etc":
        mods = tuple(os.path.join(prefix, lib, "freeswitch", "mod") for lib in ("lib", "lib64"))
        return Layout(os.path.join(prefix, "share", "freeswitch", "scripts"), mods, f"source-build layout under {prefix}")
    if os.path.basename(conf_dir) == "conf":
        return Layout(os.path.join(parent, "scripts"), (os.path.join(parent, "mod"),), f"source-build layout under {parent}")
    return Layout(PACKAGED_SCRIPT_DIR, PACKAGED_MOD_DIRS, "the packaged FreeSWITCH default")


@dataclass(frozen=True)
class LinkedPython:
    """The Python a mod_python3.so runs, and how it was found."""

    module: Optional[str]  # mod_python3.so (None: --python given and no module found)
    library: Optional[str]  # its libpython, as the loader would find it (or the soname)
    version: str  # "3.11", with ABI flags ("3.13t")
    interpreter: str

    def describe(self) -> str:
        if self.module is None:
            return f"{self.interpreter} (Python {self.version}, given with --python)"
        return f"{self.interpreter} (Python {self.version}: {self.module} is linked against {self.library})"


def find_module(mod_dirs: Sequence[str]) -> Optional[str]:
    for directory in mod_dirs:
        path = os.path.join(directory, MODULE_FILE)
        if os.path.isfile(path):
            return path
    return None


def libpython(dynamic: elf.Dynamic) -> Optional[Tuple[str, str]]:
    """(soname, version with ABI flags) of the libpython a module needs, or None."""
    for name in dynamic.needed:
        match = _LIBPYTHON.match(name)
        if match:
            return name, match.group(1) + match.group(2)
    return None


def _standard_lib_dirs() -> List[str]:
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = ["/usr/local/lib", "/usr/local/lib64"]
    if multiarch:
        dirs += [f"/usr/lib/{multiarch}", f"/lib/{multiarch}"]
    return dirs + ["/usr/lib64", "/usr/lib", "/lib64", "/lib"]


def library_dirs(module: str, dynamic: elf.Dynamic) -> List[str]:
    """Where the loader looks for the module's libraries, LD_LIBRARY_PATH aside (ld.so(8))."""
    origin = os.path.dirname(os.path.abspath(module))
    own = list(dynamic.runpath) if dynamic.runpath else list(dynamic.rpath)
    expanded = [d.replace("${ORIGIN}", origin).replace("$ORIGIN", origin) for d in own]
    return expanded + _standard_lib_dirs()


def _prefix_of(lib_dir: str) -> str:
    """The installation prefix of a library directory: /usr for /usr/lib/x86_64-linux-gnu."""
    parts = os.path.realpath(lib_dir).split(os.sep)
    for index in range(len(parts) - 1, 0, -1):
        if parts[index] in ("lib", "lib64"):
            return os.sep.join(parts[:index]) or os.sep
    return os.path.dirname(lib_dir)


def version_of(python: str) -> Optional[str]:
    """``X.Y`` plus ABI flags of an interpreter, None when it does not run."""
    try:
        result = subprocess.run(
            [python, "-I", "-c", _PROBE_VERSION],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _candidates(version: str, library_path: Optional[str]) -> List[str]:
    names = [f"python{version}"]
    dirs = [os.path.join(_prefix_of(os.path.dirname(library_path)), "bin")] if library_path else []
    dirs += ["/usr/local/bin", "/usr/bin"]
    seen: List[str] = []
    for directory in dirs:
        for name in names:
            path = os.path.join(directory, name)
            if path not in seen:
                seen.append(path)
    return seen


def linked_python(mod_dirs: Sequence[str], python: Optional[str] = None) -> LinkedPython:
    """The interpreter mod_python3 runs; ``python`` (--python) overrides the one found.

    The interpreter must be of the libpython's version and ABI, because the wheels and
    byte code install puts in the script directory are built for it.
    """
    module = find_module(mod_dirs)
    if module is None:
        if python is None:
            raise PythonNotFound(
                f"no {MODULE_FILE} in {' or '.join(mod_dirs)}: is FreeSWITCH's mod_python3 installed "
                f"(Debian: apt install freeswitch-mod-python3)? Else pass --mod-dir DIR (fs_cli -x "
                f"\"global_getvar mod_dir\") or --python PATH (the python3.X mod_python3 is linked against)"
            )
        version = version_of(python)
        if version is None:
            raise PythonNotFound(f"--python {python}: does not run")
        return LinkedPython(None, None, version, python)
    try:
        dynamic = elf.read_dynamic(module)
    except elf.NotElf as exc:
        raise PythonNotFound(f"{module}: cannot read it ({exc})") from None
    needed = libpython(dynamic)
    if needed is None:
        raise PythonNotFound(f"{module} is linked against no libpython (statically linked?): pass --python PATH")
    soname, version = needed
    found = next((os.path.join(d, soname) for d in library_dirs(module, dynamic) if os.path.exists(os.path.join(d, soname))), None)
    if python is not None:
        actual = version_of(python)
        if actual != version:
            raise PythonNotFound(
                f"--python {python} is Python {actual or '(does not run)'}, but {module} runs Python {version} "
                f"({soname}): packages and byte code for one do not serve the other"
            )
        return LinkedPython(module, found or soname, version, python)
    for candidate in _candidates(version, found):
        if os.path.isfile(candidate) and version_of(candidate) == version:
            return LinkedPython(module, found or soname, version, candidate)
    raise PythonNotFound(
        f"{module} runs Python {version} ({found or soname}), and no python{version} was found next to it "
        f"({', '.join(_candidates(version, found))}): pass --python PATH"
    )
