"""fs-guard and its dependencies, built for the Python mod_python3 runs, for its script directory.

mod_python3 puts FreeSWITCH's script directory first on ``sys.path``, so fs-guard placed
there is imported before anything of the distribution's Python, which stays untouched
(Debian 12's is externally managed, PEP 668). pip, run for the linked interpreter
(``pip --python``: wheels of ITS version and ABI, compiled ones included), installs into
an empty staging directory (PEP 668 guards the interpreter's own site-packages, and
pip skips its check for ``--target``); that interpreter compiles it to checked-hash byte code
(the same bytes on every run, valid wherever the files are copied, so a second install
changes nothing) and must import ``fs_guard.screen`` and every dependency from there
before install plans to copy a single file.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

from fs_guard import __version__

DISTRIBUTION = "fs-guard"
#: What pip writes into --target that FreeSWITCH never uses: console scripts.
SKIPPED = ("bin",)
PIP_TIMEOUT = 900.0
PROBE_TIMEOUT = 60.0

#: Run by the linked interpreter: import as mod_python3 would, report as JSON.
_PROBE = r"""
import importlib, json, sys
if sys.path and sys.path[0] == "":
    del sys.path[0]  # -c puts the working directory first; mod_python3 does not
report = {"errors": [], "version": None, "file": None}
try:
    importlib.import_module("fs_guard.screen")
    import fs_guard
    report["version"], report["file"] = fs_guard.__version__, fs_guard.__file__
except Exception as exc:
    report["errors"].append("fs_guard.screen: %s: %s" % (type(exc).__name__, exc))
for name in sys.argv[1:]:
    import importlib.metadata as metadata
    try:
        modules = (metadata.distribution(name).read_text("top_level.txt") or "").split()
        for module in modules or [name.replace("-", "_").lower()]:
            importlib.import_module(module)
    except metadata.PackageNotFoundError:
        report["errors"].append("%s: not installed" % name)
    except Exception as exc:
        report["errors"].append("%s: %s: %s" % (name, type(exc).__name__, exc))
print(json.dumps(report))
"""


class PayloadError(Exception):
    """fs-guard could not be built or imported for mod_python3's Python."""


@dataclass(frozen=True)
class Probe:
    """What an interpreter imported, with a path put first as mod_python3 puts script_dir."""

    version: Optional[str]
    file: Optional[str]
    errors: Tuple[str, ...]

    def problem(self) -> Optional[str]:
        """Why fs-guard would not run; None when it would."""
        if self.errors:
            return "; ".join(self.errors)
        if self.version != __version__:
            return f"it would import fs-guard {self.version} ({self.file}), not {__version__} (this fs-guard)"
        return None


def installed_from() -> Optional[str]:
    """The local directory or file this fs-guard was installed from (pip's direct_url.json)."""
    try:
        text = importlib.metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    url = json.loads(text).get("url", "") if text else ""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path) if url.startswith("file://") else ""
    return path if path and os.path.exists(path) else None


def requirement(package: Optional[str], wheels: Optional[str]) -> str:
    """What pip installs: --package; else this fs-guard's source; else this version by name.

    With --wheels (no index) the source is not used: building it needs setuptools from an index.
    """
    if package:
        return package
    source = None if wheels else installed_from()
    return source or f"{DISTRIBUTION}=={__version__}"


def dependencies() -> Tuple[str, ...]:
    """Names of this fs-guard's runtime requirements (its extras excluded)."""
    try:
        requires = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return ()
    names = []
    for line in requires:
        spec, _, marker = line.partition(";")
        match = re.match(r"[A-Za-z0-9._-]+", spec.strip())
        if match and "extra" not in marker:
            names.append(match.group(0))
    return tuple(names)


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _run(command: Sequence[str], timeout: float, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            list(command), stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
            timeout=timeout, env=env,
        )
    except subprocess.TimeoutExpired:
        raise PayloadError(f"{command[0]} did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise PayloadError(f"{command[0]}: {exc}") from None


def stage(python: str, wanted: str, wheels: Optional[str], into: str, final: str) -> None:
    """pip-install ``wanted`` and its dependencies for ``python`` into the empty ``into`` and compile
    it as if it were in ``final`` (the path tracebacks name, and no temporary name in the byte code)."""
    command = [
        sys.executable, "-m", "pip", "--python", python, "install", "--target", into, "--no-compile",
        "--no-input", "--disable-pip-version-check", "--no-warn-script-location", "--root-user-action", "ignore",
    ]
    if wheels:
        command += ["--no-index", "--find-links", wheels]
    result = _run(command + [wanted], PIP_TIMEOUT)
    if "no such option: --python" in result.stderr:
        raise PayloadError(f"the pip of {sys.executable} is older than 22.3: {sys.executable} -m pip install --upgrade pip")
    if result.returncode != 0:
        raise PayloadError(f"pip could not install {wanted} for {python}:\n{_tail(result.stderr or result.stdout)}")
    for name in SKIPPED:
        shutil.rmtree(os.path.join(into, name), ignore_errors=True)
    env = dict(os.environ, PYTHONHASHSEED="0")  # sets and frozensets in byte code: the same order every time
    command = [python, "-I", "-m", "compileall", "-q", "--invalidation-mode", "checked-hash", "-d", final, into]
    compiled = _run(command, PIP_TIMEOUT, env)
    if compiled.returncode != 0:
        raise PayloadError(f"{python} could not compile what pip installed:\n{_tail(compiled.stdout + compiled.stderr)}")


def probe(python: str, first: str) -> Probe:
    """Import fs_guard.screen and each dependency in ``python`` with ``first`` before its own path.

    mod_python3 sets PYTHONPATH to script_dir before Py_Initialize, site-packages stay
    after it: the probe runs the same way (no user site: FreeSWITCH runs as its own user).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = first
    result = _run([python, "-s", "-c", _PROBE, *dependencies()], PROBE_TIMEOUT, env)
    try:
        report = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise PayloadError(f"{python} could not run the import check:\n{_tail(result.stderr)}") from None
    return Probe(report["version"], report["file"], tuple(report["errors"]))


def files(top: str) -> Iterator[Tuple[str, str]]:
    """(path relative to ``top`` in POSIX form, full path) of every file under it, sorted."""
    for base, dirs, names in os.walk(top):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(base, name)
            yield os.path.relpath(full, top).replace(os.sep, "/"), full


def contents(top: str) -> str:
    """The distributions in a staging directory: 'fs-guard 0.1.0, jsonschema 4.23.0, ...'."""
    found: List[str] = []
    for name in sorted(os.listdir(top)):
        if name.endswith(".dist-info"):
            project, _, version = name[: -len(".dist-info")].partition("-")
            found.append(f"{project.replace('_', '-')} {version}")
    return ", ".join(found)
