"""The package's layout is a contract: what FreeSWITCH imports is ``fs_guard.runtime`` and
the three entry points, nothing else of fs-guard and nothing it does not need."""

from __future__ import annotations

import ast
import configparser
import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path

import fs_guard

PACKAGE = Path(fs_guard.__file__).parent
FAKES = str(Path(__file__).parent / "fakes")

# Runs every entry point as FreeSWITCH would (a call, the startup script, the API
# command) in a fresh process, then prints every module that got imported.
SCRIPT = """
import json, sys, threading
import fsctl
fsctl.reset({'conf_dir': sys.argv[1], 'log_dir': sys.argv[1]})
from modpython import run_api, run_app, run_startup, unload
run_app('fs_guard.screen', fsctl.call_session(destination_number='0044', context='public', sip_network_ip='192.0.2.1'))
hook = run_startup('fs_guard.events')
fsctl.wait_until(fsctl.idle)
run_api('fs_guard.status')
fsctl.stop_running()
unload()
print(json.dumps(sorted(sys.modules)))
"""


def _imported_inside_freeswitch(conf_dir: Path) -> list:
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(conf_dir)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": FAKES})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_freeswitch_imports_only_the_entry_points_and_the_runtime_package(tmp_path):
    (tmp_path / "fs_guard.json").write_text(json.dumps({"fail2ban": {"deny_prefix": ["00"]}}))
    imported = _imported_inside_freeswitch(tmp_path)
    ours = [name for name in imported if name.startswith("fs_guard")]
    assert {"fs_guard.screen", "fs_guard.events", "fs_guard.status", "fs_guard.runtime.screening"} <= set(ours)
    outside = [name for name in ours if name not in ("fs_guard", "fs_guard.screen", "fs_guard.events",
                                                     "fs_guard.status", "fs_guard.runtime")
               and not name.startswith("fs_guard.runtime.")]
    assert outside == []
    top_level = {name.split(".")[0] for name in imported}
    # jsonschema validates the file; the fake freeswitch module and the test's own
    # modpython/fsctl are the host; redis is imported only with a cluster setting.
    assert "redis" not in top_level and "plotly" not in top_level
    assert "prometheus_client" not in top_level and "fs_guard.runtime.metrics" not in imported
    assert {"freeswitch", "modpython", "fsctl", "jsonschema"} <= top_level


# Places calls only, as the dialplan does, with a metrics setting in the configuration.
CALLS_ONLY = """
import json, sys
import fsctl
fsctl.reset({'conf_dir': sys.argv[1], 'log_dir': sys.argv[1]})
from modpython import run_app
for number in ('0044', '12345'):
    run_app('fs_guard.screen', fsctl.call_session(destination_number=number, context='public',
                                                  sip_network_ip='192.0.2.1'))
print(json.dumps(sorted(sys.modules)))
"""


def test_the_call_path_never_imports_the_metrics_even_when_they_are_configured(tmp_path):
    (tmp_path / "fs_guard.json").write_text(json.dumps({"fail2ban": {"metrics": {"listen": "127.0.0.1:15248"}}}))
    result = subprocess.run([sys.executable, "-c", CALLS_ONLY, str(tmp_path)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": FAKES})
    assert result.returncode == 0, result.stderr
    imported = json.loads(result.stdout)
    assert "fs_guard.runtime.screening" in imported
    assert not [name for name in imported if name.split(".")[0] == "prometheus_client"]
    assert "fs_guard.runtime.metrics" not in imported


def test_each_module_is_in_the_group_for_where_it_runs():
    groups = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()}
    assert groups == {"runtime", "fsconf", "offline"}
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "events.py", "screen.py", "status.py"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set) -> set:
    """The modules ``path`` imports, anywhere in it (inside a function too), as dotted names:
    ``from a.b import c`` is ``a.b.c`` when that is a module, else ``a.b``."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + [base]).strip(".")
            imported.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                            for alias in node.names)
    return imported


def _import_graph() -> dict:
    """fs_guard's modules, each with the fs_guard modules it imports."""
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: {target for target in _imports(path, set(paths)) if target in paths and target != name}
            for name, path in paths.items()}


def test_runtime_modules_never_import_the_offline_or_configuration_tools():
    for name, imported in _import_graph().items():
        if name.startswith("fs_guard.runtime"):
            assert all(target == "fs_guard" or target.startswith("fs_guard.runtime") for target in imported), \
                (name, imported)


def test_no_module_imports_itself_through_others():
    """No import circle, not even through an import inside a function: a module below another
    never needs it (the cluster publishes through ``penalty``, above ``offence``)."""
    graph = _import_graph()
    done: set = set()

    def visit(name: str, path: tuple) -> None:
        if name in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(name):] + (name,)))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, path + (name,))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())


def test_setup_cfg_ships_every_runtime_package_and_its_data_files():
    """setup.cfg lists packages by hand: a new one (``runtime/cluster``) or a data file in it
    (``count.lua``, ``schema.json``) left out of it is missing after ``pip install``."""
    setup = configparser.ConfigParser()
    setup.read(PACKAGE.parent / "setup.cfg")
    packages = set(setup["options"]["packages"].split())
    data = {name: [glob.strip() for glob in globs.split(",")] for name, globs in setup["options.package_data"].items()}
    runtime = PACKAGE / "runtime"
    for directory in [runtime] + [path for path in runtime.rglob("*") if (path / "__init__.py").exists()]:
        name = _module_name(directory / "__init__.py")
        assert name in packages
        for path in directory.iterdir():
            if path.is_file() and path.suffix not in (".py", ".pyc"):
                assert any(fnmatch.fnmatch(path.name, glob) for glob in data.get(name, ())), path


def test_the_plotting_library_is_imported_only_by_replay_html(tmp_path):
    """plotly (the ``report`` extra) is for ``--html``: a replay without it never imports it."""
    script = ("import sys; from fs_guard.offline import cli; code = cli.main(sys.argv[1:]); "
              "sys.stderr.write('plotly imported: %s\\n' % ('plotly' in sys.modules)); sys.exit(code)")
    for extra, imported in (([], False), (["--html", str(tmp_path / "r.html")], True)):
        result = subprocess.run([sys.executable, "-c", script, "demo", *extra], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stderr.endswith(f"plotly imported: {imported}\n")


# A call screened in a fresh process, then the modules it left imported.
CALL_SCRIPT = """
import json, sys
import fsctl
fsctl.reset({'conf_dir': sys.argv[1], 'log_dir': sys.argv[1]})
from modpython import run_app
for number in ('09098790000', '1001', '112'):
    run_app('fs_guard.screen', fsctl.call_session(destination_number=number, context='default',
                                                  sip_network_ip='192.0.2.1'))
print(json.dumps(sorted(sys.modules)))
"""


def _imported_by_calls(conf_dir: Path) -> set:
    result = subprocess.run([sys.executable, "-c", CALL_SCRIPT, str(conf_dir)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": FAKES})
    assert result.returncode == 0, result.stderr
    return {name.split(".")[0] for name in json.loads(result.stdout)} | set(json.loads(result.stdout))


def test_calls_import_libphonenumber_only_with_a_dialling_region(tmp_path):
    (tmp_path / "fs_guard.json").write_text(json.dumps({"fail2ban": {"deny_prefix": ["00"]}}))
    assert "phonenumbers" not in _imported_by_calls(tmp_path)
    (tmp_path / "fs_guard.json").write_text(json.dumps({"fail2ban": {
        "dialling": {"region": "GB"}, "deny_number_types": ["premium_rate"]}}))
    assert "phonenumbers" in _imported_by_calls(tmp_path)
