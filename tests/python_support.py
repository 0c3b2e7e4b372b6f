"""What the tests of installing into mod_python3's Python build, once per session.

- ``managed_python``: a Python installation of the test interpreter's version that is
  "externally managed" (PEP 668), as Debian 12's is: its own prefix with the binary
  copied, the standard library linked in, an empty site-packages and an
  EXTERNALLY-MANAGED file in its stdlib directory. (A venv cannot stand in: pip never
  treats a venv as externally managed.)
- ``mod_python3``: a real ELF shared object built with gcc and linked against that
  installation's libpython (DT_NEEDED libpythonX.Y.so.1.0, DT_RUNPATH its lib/), the way
  mod_python3.so is linked against the Python it embeds.
- ``wheelhouse``: fs-guard's wheel and its dependencies' (``pip wheel``), so that each
  install in the tests runs pip with ``--no-index``.

gcc missing or no index to build the wheels from: the tests skip, unless
FS_GUARD_REQUIRE_GCC / FS_GUARD_REQUIRE_WHEELS is set (CI sets both), and then they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Looked up once, at import: tests set PATH to directories of their own.
GCC = shutil.which("gcc")
VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}{getattr(sys, 'abiflags', '')}"


def _required(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() not in ("", "0", "no", "false")


def need(reason: str, variable: str) -> None:
    import pytest

    if _required(variable):
        pytest.fail(f"{reason} (and {variable} is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(f"{reason}; set {variable}=1 to make this a failure")


def _base_library() -> Path:
    """The libpython of the interpreter running the tests (the one a venv was made from)."""
    soname = sysconfig.get_config_var("INSTSONAME") or ""
    library = Path(sysconfig.get_config_var("LIBDIR") or "", soname)
    if not soname.startswith("libpython") or not library.is_file():
        need(f"this Python ({sys.executable}) has no shared libpython to link a mod_python3.so against", "FS_GUARD_REQUIRE_GCC")
    return library


def _link_name(soname: str) -> str:
    return soname.split(".so")[0] + ".so"  # libpython3.11.so.1.0 -> libpython3.11.so


def managed_python(prefix: Path) -> Path:
    """An externally managed Python installation under ``prefix``; returns its interpreter."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    (prefix / "bin").mkdir(parents=True)
    own_stdlib = prefix / "lib" / stdlib.name
    own_stdlib.mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name not in ("site-packages", "dist-packages", "EXTERNALLY-MANAGED"):
            (own_stdlib / entry.name).symlink_to(entry)
    (own_stdlib / "site-packages").mkdir()
    (own_stdlib / "EXTERNALLY-MANAGED").write_text(
        "[externally-managed]\nError=This Python is managed by the test, as Debian's is by apt.\n"
    )
    library = _base_library()
    (prefix / "lib" / library.name).symlink_to(library)
    (prefix / "lib" / _link_name(library.name)).symlink_to(library)  # what -lpythonX.Y looks for
    python = prefix / "bin" / f"python{VERSION}"
    shutil.copy2(os.path.realpath(getattr(sys, "_base_executable", sys.executable)), python)
    return python


def mod_python3(mod_dir: Path, prefix: Path, version: str = VERSION) -> Path:
    """A shared object that needs libpython``version`` and finds it through its RUNPATH."""
    mod_dir.mkdir(parents=True, exist_ok=True)
    source = mod_dir / "mod_python3.c"
    source.write_text("extern void Py_Initialize(void);\nvoid mod_python3_load(void) { Py_Initialize(); }\n")
    target = mod_dir / "mod_python3.so"
    _gcc("-shared", "-fPIC", "-o", str(target), str(source), "-Wl,--no-as-needed", f"-L{prefix / 'lib'}",
         f"-lpython{version}", f"-Wl,-rpath,{prefix / 'lib'}", "-Wl,--enable-new-dtags")
    source.unlink()
    return target


def _gcc(*args: str) -> None:
    if GCC is None:
        need("gcc is not installed (Debian: apt-get install gcc)", "FS_GUARD_REQUIRE_GCC")
    env = dict(os.environ, PATH=os.pathsep.join([os.path.dirname(GCC), os.defpath]))  # as, ld
    result = subprocess.run([GCC, *args], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


def fake_libpython(lib_dir: Path, soname: str) -> None:
    """A shared library named like a libpython, so that a module can be linked against a version
    this machine does not have."""
    lib_dir.mkdir(parents=True, exist_ok=True)
    source = lib_dir / "py.c"
    source.write_text("void Py_Initialize(void) {}\n")
    _gcc("-shared", "-fPIC", "-o", str(lib_dir / soname), str(source), f"-Wl,-soname,{soname}")
    (lib_dir / _link_name(soname)).symlink_to(lib_dir / soname)
    source.unlink()


def wheelhouse(directory: Path) -> Path:
    """fs-guard's wheel, built from this checkout, and the wheels of its dependencies."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "-w", str(directory), str(REPO)],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        need(f"pip could not build the wheels (no package index?): {result.stderr.strip()[-500:]}", "FS_GUARD_REQUIRE_WHEELS")
    return directory
