"""``fs-guard install`` and mod_python3's Python: found from mod_python3.so, never modified.

The central proof: on a source-build layout whose mod_python3.so (a real ELF, built by
gcc) is linked against an externally managed Python (PEP 668, like Debian 12's), where
plain pip refuses, install puts fs-guard and its dependencies into FreeSWITCH's script
directory, and that Python, seeing nothing but the script directory (as mod_python3
sees fs-guard: first on sys.path), imports fs_guard.screen and rejects a toll-fraud call
through the fake freeswitch module. Uninstall then leaves the script directory as it was.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Tuple

import pytest

import fstree
import python_support
from fs_guard import __version__
from fs_guard.fsconf import elf, install, modpython
from fs_guard.offline.cli import main

FAKES = Path(__file__).parent / "fakes"
SCANNER_CALL = {"destination_number": "01197259912", "context": "public", "sip_network_ip": "203.0.113.9"}


def cli(*argv: str) -> Tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(argv))
    return code, out.getvalue()


class SourceBuild:
    """FreeSWITCH built from source with a prefix (configure.ac's FHS layout), its mod_python3.so
    linked against the managed Python, and an operator's own script in the script directory."""

    def __init__(self, root: Path, python_prefix: Path) -> None:
        self.prefix = root / "usr" / "local" / "freeswitch"
        self.tree = fstree.stock(self.prefix / "etc" / "freeswitch")
        self.conf = self.tree.root
        self.scripts = self.prefix / "share" / "freeswitch" / "scripts"
        self.mods = self.prefix / "lib" / "freeswitch" / "mod"
        self.log = self.prefix / "var" / "log" / "freeswitch"
        self.fail2ban = root / "etc" / "fail2ban"
        for directory in (self.scripts / "__pycache__", self.log, self.fail2ban):
            directory.mkdir(parents=True)
        (self.scripts / "ivr_menu.py").write_text("def handler(session, args):\n    session.answer()\n")
        (self.scripts / "__pycache__" / "ivr_menu.cpython-311.pyc").write_bytes(b"\x00operator's byte code")
        self.module = python_support.mod_python3(self.mods, python_prefix)

    def install(self, *extra: str) -> Tuple[int, str]:
        return cli("install", "--conf-dir", str(self.conf), "--fail2ban-dir", str(self.fail2ban), *extra)

    def snapshot(self):
        return fstree.snapshot(self.scripts, self.conf, self.fail2ban, self.log)


@pytest.fixture(autouse=True)
def no_fs_cli(bin_dir):
    """No FreeSWITCH answers: the directories come from the layout."""


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    return path


@pytest.fixture(scope="module")
def installed(tmp_path_factory, managed_python, wheelhouse):
    """A source build with fs-guard installed by ``fs-guard install --wheels``, nothing else given."""
    python, prefix = managed_python
    site = SourceBuild(tmp_path_factory.mktemp("installed"), prefix)
    prefix_before = fstree.snapshot(prefix)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", str(tmp_path_factory.mktemp("empty-bin")))
        code, out = site.install("--wheels", str(wheelhouse))
    assert code == 0, out
    return site, python, prefix, prefix_before, out


def run_isolated(python: Path, script_dir: Path, code: str, tmp_path: Path) -> dict:
    """``code`` in ``python -I -S`` with only the script directory and the fake freeswitch module
    (which, inside FreeSWITCH, is the freeswitch.py in the linked Python's site-packages) added."""
    prologue = f"import sys\nsys.path[:0] = [{str(script_dir)!r}, {str(FAKES)!r}]\n"
    result = subprocess.run(
        [str(python), "-I", "-S", "-c", prologue + code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- the externally managed Python ----------------------------------------------------


def test_plain_pip_is_refused_by_an_externally_managed_python(managed_python, wheelhouse):
    python, prefix = managed_python
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "--find-links", str(wheelhouse), "fs-guard"],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "externally-managed-environment" in result.stderr
    assert not any((prefix / "lib").glob("python*/site-packages/*"))


def test_install_puts_fs_guard_for_the_linked_python_into_the_script_directory(installed):
    site, python, prefix, prefix_before, out = installed
    library = prefix / "lib" / f"libpython{python_support.VERSION}.so.1.0"
    assert f"mod_python3 runs {python} (Python {python_support.VERSION}: {site.module} is linked against {library})" in out
    assert f"its script directory is {site.scripts} (source-build layout under {site.prefix})" in out
    assert (site.scripts / "fs_guard" / "screen.py").is_file()
    assert (site.scripts / f"fs_guard-{__version__}.dist-info").is_dir()
    assert (site.scripts / "jsonschema" / "__init__.py").is_file()
    assert not (site.scripts / "bin").exists()  # pip's console scripts are no use inside FreeSWITCH
    assert f"installed  " in out and f"file(s) in {site.scripts} (" in out and f"fs-guard {__version__}" in out
    # byte code for the linked Python, checked against the source by hash (valid wherever copied)
    pyc = next((site.scripts / "fs_guard" / "__pycache__").glob("screen.*.pyc")).read_bytes()
    assert int.from_bytes(pyc[4:8], "little") == 0b11
    # the Python itself is untouched: not a file added, changed or removed under its prefix
    assert fstree.snapshot(prefix) == prefix_before


def test_the_linked_python_seeing_only_the_script_directory_screens_a_call(installed, tmp_path):
    site, python, *_ = installed
    report = run_isolated(
        python,
        site.scripts,
        "import json, fsctl, modpython\n"
        f"fsctl.reset({{'conf_dir': {str(site.conf)!r}, 'log_dir': {str(tmp_path)!r}}})\n"
        f"session = fsctl.call_session(**{SCANNER_CALL!r})\n"
        "modpython.run_app('fs_guard.screen', session)\n"
        "import fs_guard, jsonschema\n"
        "print(json.dumps({'cause': session.hangupCause(), 'fs_guard': fs_guard.__file__,\n"
        "    'jsonschema': jsonschema.__file__, 'path': sys.path, 'log': fsctl.log_lines('err')}))\n",
        tmp_path,
    )
    assert report["cause"] == "CALL_REJECTED" and report["log"] == []
    assert report["fs_guard"].startswith(f"{site.scripts}/") and report["jsonschema"].startswith(f"{site.scripts}/")
    assert not any("site-packages" in entry for entry in report["path"])
    (line,) = (tmp_path / "fs-guard-ban.log").read_text().splitlines()
    assert "ip[203.0.113.9] reason=deny_prefix context=public" in line


def test_an_upgrade_and_uninstall_touch_exactly_the_files_install_put_there(tmp_path, managed_python, wheelhouse):
    _, prefix = managed_python
    site = SourceBuild(tmp_path, prefix)
    before = fstree.files(site.snapshot())
    code, out = site.install("--wheels", str(wheelhouse))
    assert code == 0, out

    # a file an earlier version installed and this one no longer has
    retired = site.scripts / "fs_guard" / "retired.py"
    retired.write_bytes(b"# fs-guard 0.0.9\n")
    manifest = install.load_manifest(str(site.conf))
    entry = install.Entry(str(retired), None, "", install._sha(b"# fs-guard 0.0.9\n"), install.PYTHON_GROUP)
    install._save(install.state_dir(str(site.conf)), install.Manifest(manifest.entries + (entry,), manifest.created_dirs))
    installed = fstree.snapshot(site.scripts)

    code, out = site.install("--wheels", str(wheelhouse), "--dry-run")
    assert code == 0 and f"would install  1 file(s) in {site.scripts}/fs_guard (1 removed)" in out
    assert fstree.snapshot(site.scripts) == installed

    code, out = site.install("--wheels", str(wheelhouse))
    assert code == 0, out
    assert f"installed  1 file(s) in {site.scripts}/fs_guard (1 removed)" in out
    assert "systemctl restart freeswitch" in out  # a running FreeSWITCH keeps the old modules
    del installed[str(retired)]
    assert fstree.snapshot(site.scripts) == installed  # everything else: not one byte rewritten, not one mtime
    assert install.load_manifest(str(site.conf)).entry(str(retired)) is None

    code, out = cli("uninstall", "--conf-dir", str(site.conf))
    assert code == 0, out
    assert f"removed  " in out and f"file(s) in {site.scripts} (" in out
    assert fstree.files(site.snapshot()) == before  # the operator's script and byte code are still there


def test_a_package_put_into_the_script_directory_by_hand_is_not_mixed_with(tmp_path, managed_python, wheelhouse):
    _, prefix = managed_python
    site = SourceBuild(tmp_path, prefix)
    (site.scripts / "jsonschema").mkdir()
    (site.scripts / "jsonschema" / "__init__.py").write_text("# an older jsonschema, pip-installed here by hand\n")
    before = site.snapshot()
    code, out = site.install("--wheels", str(wheelhouse))
    assert code == 2
    assert f"{site.scripts} already holds jsonschema/, not put there by fs-guard install" in out
    assert site.snapshot() == before


def test_check_import_refuses_when_the_linked_python_cannot_import_fs_guard(tmp_path, managed_python):
    python, prefix = managed_python
    site = SourceBuild(tmp_path, prefix)
    before = site.snapshot()
    code, out = site.install("--check-import")
    assert code == 2
    assert f"{python}, with {site.scripts} first on sys.path as mod_python3 runs it, would not run fs-guard" in out
    assert "No module named 'fs_guard'" in out and "nothing was changed" in out
    assert site.snapshot() == before


# -- finding mod_python3.so and its Python ------------------------------------------------


def test_the_libpython_a_module_needs_is_read_from_its_dynamic_section(tmp_path, managed_python):
    _, prefix = managed_python
    module = python_support.mod_python3(tmp_path / "mod", prefix)
    dynamic = elf.read_dynamic(str(module))
    assert f"libpython{python_support.VERSION}.so.1.0" in dynamic.needed
    assert dynamic.runpath == (str(prefix / "lib"),)
    assert modpython.libpython(dynamic) == (f"libpython{python_support.VERSION}.so.1.0", python_support.VERSION)


@pytest.mark.parametrize(
    "needed, found",
    [
        (("libc.so.6", "libpython3.11.so.1.0"), ("libpython3.11.so.1.0", "3.11")),
        (("libpython3.13t.so.1.0",), ("libpython3.13t.so.1.0", "3.13t")),
        (("libpython3.9d.so",), ("libpython3.9d.so", "3.9d")),
        (("libpython3.so", "libm.so.6"), None),  # the stable-ABI shim names no version
    ],
)
def test_the_version_and_abi_of_the_linked_python_come_from_the_soname(needed, found):
    assert modpython.libpython(elf.Dynamic(needed, (), ())) == found


def test_a_file_that_is_no_shared_object_is_refused_clearly(tmp_path):
    text = tmp_path / "mod_python3.so"
    text.write_text("not an ELF file\n")
    truncated = tmp_path / "truncated.so"
    truncated.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 20)
    for path in (text, truncated, tmp_path / "missing.so"):
        with pytest.raises(elf.NotElf):
            elf.read_dynamic(str(path))
    code, out = cli(
        "install", "--conf-dir", str(fstree.stock(tmp_path / "conf").root), "--mod-dir", str(tmp_path), "--fail2ban-dir", str(tmp_path)
    )
    assert code == 2 and f"{text}: cannot read it (not an ELF file); nothing was changed" in out


def test_a_python_of_another_version_than_the_linked_one_is_refused(tmp_path):
    python_support.fake_libpython(tmp_path / "lib", "libpython3.99.so.1.0")
    module = python_support.mod_python3(tmp_path / "mod", tmp_path, version="3.99")
    site = fstree.stock(tmp_path / "conf")
    args = ["install", "--conf-dir", str(site.root), "--fail2ban-dir", str(tmp_path), "--mod-dir", str(tmp_path / "mod")]
    code, out = cli(*args)
    assert code == 2
    assert f"{module} runs Python 3.99 ({tmp_path}/lib/libpython3.99.so.1.0), and no python3.99 was found next to it" in out
    code, out = cli(*args, "--python", sys.executable)
    mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert code == 2 and f"--python {sys.executable} is Python {mine}, but {module} runs Python 3.99" in out


def test_without_mod_python3_install_says_where_it_looked_and_what_to_pass(tmp_path):
    site = fstree.stock(tmp_path / "usr" / "local" / "freeswitch" / "etc" / "freeswitch")
    code, out = cli("install", "--conf-dir", str(site.root), "--fail2ban-dir", str(tmp_path))
    prefix = tmp_path / "usr" / "local" / "freeswitch"
    assert code == 2
    assert f"no mod_python3.so in {prefix}/lib/freeswitch/mod or {prefix}/lib64/freeswitch/mod" in out
    assert "--mod-dir DIR" in out and "--python PATH" in out


@pytest.mark.parametrize(
    "conf_dir, script_dir, mod_dirs",
    [
        ("/etc/freeswitch", "/usr/share/freeswitch/scripts", ("/usr/lib/freeswitch/mod", "/usr/lib64/freeswitch/mod")),
        (
            "/usr/local/freeswitch/etc/freeswitch",
            "/usr/local/freeswitch/share/freeswitch/scripts",
            ("/usr/local/freeswitch/lib/freeswitch/mod", "/usr/local/freeswitch/lib64/freeswitch/mod"),
        ),
        ("/usr/local/freeswitch/conf", "/usr/local/freeswitch/scripts", ("/usr/local/freeswitch/mod",)),
    ],
    ids=["packages", "source-with-prefix", "source-without-prefix"],
)
def test_the_script_and_module_directories_of_each_layout(conf_dir, script_dir, mod_dirs):
    layout = modpython.layout(conf_dir)
    assert (layout.script_dir, layout.mod_dirs) == (script_dir, mod_dirs)


def test_a_running_freeswitch_on_this_configuration_names_the_directories(tmp_path, bin_dir, managed_python):
    python, prefix = managed_python
    site = SourceBuild(tmp_path, prefix)
    elsewhere = tmp_path / "opt" / "scripts"
    elsewhere.mkdir(parents=True)
    answers = {"conf_dir": site.conf, "script_dir": elsewhere, "mod_dir": site.mods, "log_dir": site.log}
    script = bin_dir / "fs_cli"
    script.write_text("#!/bin/sh\ncase \"$2\" in\n" + "".join(
        f'  "global_getvar {name}") echo "{value}" ;;\n' for name, value in answers.items()
    ) + '  *) echo "-ERR no reply" ;;\nesac\n')
    script.chmod(0o755)
    code, out = site.install("--check-import")
    assert code == 2
    assert f"{python}, with {elsewhere} first on sys.path as mod_python3 runs it, would not run fs-guard" in out
