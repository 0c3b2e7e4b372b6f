"""The `fs-guard` command as a whole: what every subcommand does alike."""

from __future__ import annotations

import os
import subprocess
import sys

import fstree
import pytest

from fs_guard.fsconf import install
from fs_guard.offline import cli


def into_closed_pipe(*args: str, buffered: bool) -> subprocess.CompletedProcess:
    """``fs-guard ARGS | head -0``, made exact: the pipe's reader is gone before the first write."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run([sys.executable, "-m", "fs_guard", *args], stdout=writer, stderr=subprocess.PIPE,
                              text=True, timeout=120, env=env)
    finally:
        os.close(writer)


class TestReaderGone:
    """`fs-guard ... | head`: stop quietly with 141, as a command killed by SIGPIPE."""

    @pytest.fixture
    def installed(self, tmp_path):
        conf = tmp_path / "conf"
        fstree.stock(conf)
        (tmp_path / "fail2ban").mkdir()
        python = install.PythonTarget(place=False, python=sys.executable, script_dir=str(tmp_path))
        install.apply_install(install.plan_install(str(conf), str(tmp_path / "fail2ban"), str(tmp_path), python=python))
        return conf

    @pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "PYTHONUNBUFFERED"])
    def test_every_kind_of_output_stops_with_141_and_no_message(self, installed, tmp_path, capsys, buffered):
        capsys.readouterr()
        trace = tmp_path / "trace.jsonl"
        trace.write_text('{"time": 1795860000, "ip": "203.0.113.7", "number": "0044"}\n')
        for args in (["audit", "--conf-dir", str(installed)],
                     ["audit", "--json", "--conf-dir", str(installed)],
                     ["uninstall", "--dry-run", "--conf-dir", str(installed)],
                     ["check-config", "--config", str(installed / "fs_guard.json")],
                     ["test", "0044", "--config", str(installed / "fs_guard.json")],
                     ["replay", str(trace)]):
            result = into_closed_pipe(*args, buffered=buffered)
            assert (result.returncode, result.stderr) == (cli.READER_GONE, ""), args

    def test_help_into_a_closed_pipe_is_quiet_too(self):
        """argparse itself ignores a failed write of its help: quiet, whatever the status."""
        for buffered in (True, False):
            assert into_closed_pipe("--help", buffered=buffered).stderr == ""

    def test_the_status_is_the_shells_for_a_command_sigpipe_killed(self):
        shell = subprocess.run(["bash", "-c", "set -o pipefail; yes | head -1 >/dev/null"], timeout=30)
        assert cli.READER_GONE == shell.returncode == 141
