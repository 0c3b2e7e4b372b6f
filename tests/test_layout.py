"""The package's layout is a contract: what FreeSWITCH imports is ``fs_guard.runtime`` and
the three entry points, nothing else of fs-guard and nothing it does not need."""

from __future__ import annotations

import ast
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
    assert {"freeswitch", "modpython", "fsctl", "jsonschema"} <= top_level


def test_each_module_is_in_the_group_for_where_it_runs():
    groups = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()}
    assert groups == {"runtime", "fsconf", "offline"}
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "events.py", "screen.py", "status.py"]


def test_runtime_modules_never_import_the_offline_or_configuration_tools():
    for path in (PACKAGE / "runtime").glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        assert all(name == "fs_guard" or name.startswith(("fs_guard.runtime", "__future__")) or
                   not name.startswith("fs_guard") for name in imported), (path.name, imported)


def test_the_plotting_library_is_imported_only_by_replay_html(tmp_path):
    """plotly (the ``report`` extra) is for ``--html``: a replay without it never imports it."""
    script = ("import sys; from fs_guard.offline import cli; code = cli.main(sys.argv[1:]); "
              "sys.stderr.write('plotly imported: %s\\n' % ('plotly' in sys.modules)); sys.exit(code)")
    for extra, imported in (([], False), (["--html", str(tmp_path / "r.html")], True)):
        result = subprocess.run([sys.executable, "-c", script, "demo", *extra], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stderr.endswith(f"plotly imported: {imported}\n")
