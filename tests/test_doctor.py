"""``fs-guard doctor`` against a FreeSWITCH that answers as a real one did (tests/data/fs_cli/,
through the fake fs_cli in tests/fakes/), a real private fail2ban-server, a real Redis and a
small HTTP server: all good, each broken link with its fix, not running, a hanging fs_cli."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import fail2ban_support as f2b
import fstree
from fs_guard import __version__
from event_socket import FakeEventSocket
from fs_guard.fsconf import doctor, fsmodel, install
from fs_guard.fsconf.live import Fail2banClient, FsCli, run
from fs_guard.runtime.config import compile_config
from redis_support import RedisServer, free_port, need_redis

TESTS = Path(__file__).parent
RECORDED = TESTS / "data" / "fs_cli"
FAKE_FS_CLI = TESTS / "fakes" / "fs_cli.py"
STATUS_JSON = "python_fs_guard_status_json.out"
SCREEN_EXTENSION = """\
    <extension name="fs_guard_screen" continue="true">
        <condition>
            <action application="python" data="fs_guard.screen"></action>

    </condition>

  </extension>
"""


class Live:
    """A running FreeSWITCH, as fs_cli answers for it: the recorded answers, with this test's
    directories (conf_dir, run_dir, the configuration file and the ban log) in them."""

    def __init__(self, tmp_path: Path, conf: Path, ban_log: Path) -> None:
        self.answers = tmp_path / "answers"
        shutil.copytree(RECORDED, self.answers)
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.fs_cli = self.bin / "fs_cli"
        # not exec: the fake runs as the wrapper's child, so a hanging one is a grandchild
        # holding fs_cli's output open, which only killing the whole process group ends
        self.fs_cli.write_text(f"#!/bin/sh\nFAKE_FS_CLI_ANSWERS='{self.answers}' '{sys.executable}' '{FAKE_FS_CLI}' \"$@\"\n")
        self.fs_cli.chmod(0o755)
        self.conf = conf
        self.config = conf / "fs_guard.json"
        self.config.write_text(json.dumps({"fail2ban": {"deny_prefix": ["00"]}}))
        self.ban_log = ban_log
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        (run_dir / doctor.PID_FILE).write_text(f"{os.getpid()}\n")
        self.answer("global_getvar conf_dir", f"{conf}\n")
        self.answer("global_getvar run_dir", f"{run_dir}\n")
        report = json.loads((RECORDED / STATUS_JSON).read_text())
        report["version"] = __version__
        report["config"].update(file=str(self.config), path=str(self.config))
        report["ban_log"] = str(ban_log)
        self.write_status(report)

    def answer(self, command: str, text: str) -> None:
        (self.answers / (command.replace(" ", "_").replace(".", "_").replace("/", "_") + ".out")).write_text(text)

    def recorded(self, name: str) -> str:
        return (RECORDED / name).read_text()

    def status(self) -> dict:
        return json.loads((self.answers / STATUS_JSON).read_text())

    def write_status(self, report: dict) -> None:
        (self.answers / STATUS_JSON).write_text(json.dumps(report, indent=2) + "\n\n")

    def mode(self, mode: str) -> None:
        (self.answers / "MODE").write_text(mode)

    def probes(self, fail2ban_socket, **more) -> doctor.Probes:
        return doctor.Probes(freeswitch=FsCli(str(self.fs_cli), timeout=30),
                             fail2ban=Fail2banClient(socket=str(fail2ban_socket), timeout=30), **more)


@pytest.fixture(scope="module")
def fail2ban(tmp_path_factory):
    """One private fail2ban-server for the module, its fs-guard jail reading ``watched.log``."""
    root = tmp_path_factory.mktemp("f2b")
    watched = root / "watched.log"
    watched.write_text("")
    server = f2b.Fail2banServer(root / "server", watched, f2b.need_fail2ban()).start()
    yield server
    server.stop()


@pytest.fixture
def live(tmp_path, fs_dirs, fail2ban):
    conf, _ = fs_dirs
    return Live(tmp_path, conf, fail2ban.logpath)


def examine(live: Live, fail2ban_socket, **probes) -> dict:
    found = doctor.examine(live.probes(fail2ban_socket, **probes), str(live.config))
    return {finding.link: finding for finding in found}


def broken(findings: dict) -> dict:
    return {link: finding for link, finding in findings.items() if finding.status == doctor.PROBLEM}


def doctor_args(fail2ban, *extra: str) -> tuple:
    """``fs-guard doctor`` asking the test's own fail2ban."""
    return ("doctor", "--fail2ban-socket", str(fail2ban.socket), *extra)


@pytest.fixture
def on_path(live, monkeypatch):
    """The command finds the fake fs_cli first on PATH (and fail2ban-client after it)."""
    monkeypatch.setenv("PATH", f"{live.bin}{os.pathsep}{os.environ.get('PATH', '')}")


# -- all good ---------------------------------------------------------------------------------


def test_a_working_chain_is_all_good(live, fail2ban):
    findings = examine(live, fail2ban.socket)
    assert list(findings) == ["freeswitch", "mod_python3", "import", "screen public", "screen default",
                              "register hook", "config", "ban log", "fail2ban", "home region", "cluster", "metrics"]
    assert {link: f.status for link, f in findings.items()} == {
        **{link: doctor.OK for link in findings}, "home region": doctor.SKIPPED, "cluster": doctor.SKIPPED,
        "metrics": doctor.SKIPPED}
    assert findings["freeswitch"].what == "FreeSWITCH (Version 1.11.3-dev  64bit) is ready"
    assert findings["fail2ban"].what == f"jail fs-guard reads {fail2ban.logpath}"
    assert doctor.exit_status(list(findings.values())) == 0


def test_the_command_prints_each_link_and_exits_0_when_all_is_good(live, fail2ban, on_path, run_cli):
    code, out = run_cli(*doctor_args(fail2ban)).merged()
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["ok", "freeswitch", "FreeSWITCH", "(Version", "1.11.3-dev", "64bit)", "is", "ready"]
    assert lines[-1] == f"fs-guard doctor {__version__}: all good"
    assert "fix:" not in out


def test_the_json_output_has_every_link_and_the_exit_status(live, fail2ban, on_path, run_cli):
    code, out = run_cli(*doctor_args(fail2ban, "--json")).merged()
    document = json.loads(out)
    assert code == document["exit_status"] == 0
    assert document["version"] == __version__
    assert [link["link"] for link in document["links"]][:3] == ["freeswitch", "mod_python3", "import"]
    assert set(document["links"][0]) == {"link", "status", "what", "fix"}


# -- cannot check ---------------------------------------------------------------------------------


def test_a_freeswitch_that_is_not_running_cannot_be_checked(live, fail2ban, on_path, run_cli):
    live.mode("notrunning")
    code, out = run_cli(*doctor_args(fail2ban, "--conf-dir", str(live.conf / "no-freeswitch-here"))).merged()
    assert code == 2, out
    assert out.splitlines()[0] == (
        "UNKNOWN  freeswitch      FreeSWITCH does not answer fs_cli -x status: "
        "[ERROR] fs_cli.c:1699 main() Error Connecting []")
    assert "fix: systemctl start freeswitch" in out
    assert "UNKNOWN  mod_python3     not checked: FreeSWITCH does not answer" in out
    assert out.splitlines()[-1].endswith("could not check everything: see UNKNOWN above")


EVENT_SOCKET = """\
<configuration name="event_socket.conf" description="Socket Client">
  <settings>
    <param name="nat-map" value="false"/>
    <param name="listen-ip" value="{ip}"/>
    <param name="listen-port" value="{port}"/>
    <param name="password" value="{password}"/>
  </settings>
</configuration>
"""


@pytest.fixture
def event_socket(live, tmp_path):
    """FreeSWITCH's event socket with its own password, answering as fs_cli's recordings say,
    and a configuration directory whose event_socket.conf.xml sets it up (``configure``)."""
    site = fstree.stock(tmp_path / "freeswitch")
    servers = []

    def start(password="s3cret", hang=False, configured_password=None):
        server = FakeEventSocket(str(live.answers), password, hang)
        servers.append(server)
        site.write("autoload_configs/event_socket.conf.xml", EVENT_SOCKET.format(
            ip="127.0.0.1", port=server.port, password=configured_password or password))
        return server, str(site.root)

    yield start
    for server in servers:
        server.close()


def test_when_fs_cli_cannot_get_in_freeswitch_is_asked_on_its_event_socket(live, fail2ban, event_socket):
    live.mode("notrunning")  # fs_cli: 127.0.0.1:8021, ClueCon; FreeSWITCH: another port and password
    server, conf_dir = event_socket()
    found = doctor.examine(live.probes(fail2ban.socket), str(live.config), conf_dir=conf_dir)
    findings = {finding.link: finding for finding in found}
    assert doctor.exit_status(found) == 0, found
    assert findings["freeswitch"].what == (
        f"FreeSWITCH (Version 1.11.3-dev  64bit) is ready (asked on its event socket 127.0.0.1:{server.port}; "
        "fs_cli: [ERROR] fs_cli.c:1699 main() Error Connecting [])")
    assert "python fs_guard.status json" in server.commands
    assert "xml_locate dialplan context name default" in server.commands


def test_an_event_socket_that_refuses_the_configured_password(live, fail2ban, event_socket, on_path, run_cli):
    live.mode("notrunning")
    server, conf_dir = event_socket(password="s3cret", configured_password="0ld-s3cret")
    code, out = run_cli(*doctor_args(fail2ban, "--conf-dir", conf_dir)).merged()
    assert code == 2, out
    assert out.splitlines()[0] == (
        "UNKNOWN  freeswitch      FreeSWITCH does not answer fs_cli -x status: [ERROR] fs_cli.c:1699 main() "
        f"Error Connecting []; its event socket 127.0.0.1:{server.port}: the event socket at "
        f"127.0.0.1:{server.port} refused the password (-ERR invalid)")
    assert "s3cret" not in out
    assert server.commands == []


def test_an_event_socket_that_never_answers_is_given_up_on(live, fail2ban, event_socket):
    live.mode("notrunning")
    server, conf_dir = event_socket(hang=True)
    probes = doctor.Probes(freeswitch=FsCli(str(live.fs_cli), timeout=30), timeout=0.3)
    found = doctor.examine(probes, str(live.config), conf_dir=conf_dir)
    assert doctor.exit_status(found) == 2
    assert found[0].what.endswith(f"the event socket at 127.0.0.1:{server.port} did not answer within 0.3 s")


def test_the_event_socket_is_where_event_socket_conf_xml_says(tmp_path):
    site = fstree.stock(tmp_path / "freeswitch")
    for ip, port, expected in [("::", "8021", ("127.0.0.1", 8021)), ("0.0.0.0", "8022", ("127.0.0.1", 8022)),
                               ("[::1]", "8021", ("::1", 8021)), ("192.0.2.5", "8021", ("192.0.2.5", 8021))]:
        site.write("autoload_configs/event_socket.conf.xml", EVENT_SOCKET.format(ip=ip, port=port, password="pw"))
        found = doctor.event_socket(fsmodel.load(str(site.root)), 1.0)
        assert (found.host, found.port, found.password) == (*expected, "pw")
    site.write("autoload_configs/event_socket.conf.xml",
               EVENT_SOCKET.format(ip="$${local_ip_v4}", port="8021", password="pw"))
    assert doctor.event_socket(fsmodel.load(str(site.root)), 1.0) is None
    assert doctor.event_socket(None, 1.0) is None


def test_a_hanging_fs_cli_is_given_up_on(live, fail2ban):
    """The fake never answers and its process holds fs_cli's output open: doctor still ends.
    (The 60 s guard only keeps a broken doctor from stalling the suite.)"""
    live.mode("hang")
    env = {**os.environ, "PATH": f"{live.bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run([sys.executable, "-m", "fs_guard", "doctor", "--timeout", "0.5", "--json",
                             "--fail2ban-socket", str(fail2ban.socket), "--conf-dir", str(live.conf / "nothing")],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2, result.stderr
    first = json.loads(result.stdout)["links"][0]
    assert first["status"] == doctor.UNKNOWN
    assert first["what"] == "FreeSWITCH does not answer fs_cli -x status: fs_cli did not answer within 0.5 s"


def test_a_program_whose_children_keep_its_output_open_is_killed_with_them(tmp_path):
    script = tmp_path / "slow"
    script.write_text(f"#!/bin/sh\necho started\n'{sys.executable}' -c 'import time; time.sleep(3600)'\n")
    script.chmod(0o755)
    replies = []
    worker = threading.Thread(target=lambda: replies.append(run([str(script)], 0.3)), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive()
    assert replies[0].failure == "slow did not answer within 0.3 s" and not replies[0].ok


def test_no_fs_cli_at_all_cannot_check(tmp_path):
    finding = doctor.reach_freeswitch(FsCli(str(tmp_path / "nowhere" / "fs_cli"), timeout=5), lambda: None)[1]
    assert finding.status == doctor.UNKNOWN
    assert finding.what.startswith("FreeSWITCH does not answer fs_cli -x status: cannot run ")


# -- each broken link, with its fix ------------------------------------------------------------------


def test_no_fs_cli_on_path_says_where_to_find_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    finding = doctor.reach_freeswitch(FsCli(timeout=5), lambda: None)[1]
    assert (finding.status, finding.what) == (doctor.UNKNOWN, "no fs_cli on PATH: cannot ask FreeSWITCH")
    assert finding.fix.startswith("export PATH=$PATH:/usr/local/freeswitch/bin")


@pytest.mark.parametrize("answer", ["[]", '{"counters": {}}', "{not json"])
def test_a_status_answer_that_is_not_fs_guards_report(live, fail2ban, answer):
    live.answer("python fs_guard.status json", answer)
    findings = examine(live, fail2ban.socket)
    assert list(broken(findings)) == ["import"]
    assert findings["config"].what == "not checked: fs_guard.status does not answer"


def test_a_report_with_parts_of_another_shape_does_not_crash(live, fail2ban):
    live.write_status({**live.status(), "config": "x", "register_failure_hook": [], "counters": None})
    findings = examine(live, fail2ban.socket)
    assert findings["register hook"].status == doctor.PROBLEM
    assert findings["config"].what == "fs_guard.status names no configuration file"


def test_mod_python3_not_loaded(live, fail2ban):
    live.answer("module_exists mod_python3", live.recorded("module_exists_mod_nope.out"))
    findings = examine(live, fail2ban.socket)
    assert list(broken(findings)) == ["mod_python3"]
    assert broken(findings)["mod_python3"].fix.startswith('fs_cli -x "load mod_python3"')
    assert findings["import"].status == doctor.UNKNOWN


def test_freeswitch_python_cannot_import_fs_guard(live, fail2ban):
    live.answer("python fs_guard.status json", live.recorded("python_no_such_module.out"))
    findings = broken(examine(live, fail2ban.socket))
    assert list(findings) == ["import"]
    assert "cannot import fs_guard (python fs_guard.status answered: -ERR no reply" in findings["import"].what
    assert findings["import"].fix.startswith(f"fs-guard install --conf-dir {live.conf}")


def test_freeswitch_runs_another_version_of_fs_guard(live, fail2ban):
    live.write_status({**live.status(), "version": "0.0.9"})
    findings = broken(examine(live, fail2ban.socket))
    assert list(findings) == ["import"]
    assert findings["import"].what == f"FreeSWITCH runs fs-guard 0.0.9, this command is fs-guard {__version__}"
    assert "systemctl restart freeswitch" in findings["import"].fix


@pytest.fixture
def installed(tmp_path, live):
    """A configuration fs-guard install has edited, the one the running FreeSWITCH says it reads."""
    site = fstree.stock(tmp_path / "freeswitch")
    (tmp_path / "fail2ban").mkdir()
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    python = install.PythonTarget(place=False, python=sys.executable, script_dir=str(scripts))  # imports fs-guard
    install.apply_install(install.plan_install(str(site.root), str(tmp_path / "fail2ban"), str(tmp_path), python=python))
    live.answer("global_getvar conf_dir", f"{site.root}\n")
    return site


def _public_without_screen() -> str:
    recorded = (RECORDED / "xml_locate_dialplan_context_name_public.out").read_text()
    assert SCREEN_EXTENSION in recorded
    return recorded.replace(SCREEN_EXTENSION, "")


def test_a_context_whose_first_action_is_not_the_screen(live, fail2ban):
    live.answer("xml_locate dialplan context name public", _public_without_screen())
    findings = broken(examine(live, fail2ban.socket))
    assert list(findings) == ["screen public"]
    assert findings["screen public"].what == "what runs first depends on the call"
    assert findings["screen public"].fix == f'fs-guard install --conf-dir {live.conf}; then: fs_cli -x "reloadxml"'


def test_a_screen_installed_on_disk_but_not_loaded_needs_only_reloadxml(live, fail2ban, installed):
    live.answer("xml_locate dialplan context name public", _public_without_screen())
    findings = broken(examine(live, fail2ban.socket))
    assert findings["screen public"].fix == 'fs_cli -x "reloadxml"'
    assert "the file on disk has the screen first, FreeSWITCH has not read it" in findings["screen public"].what


def test_a_screen_that_stops_the_dialplan(live, fail2ban):
    recorded = (RECORDED / "xml_locate_dialplan_context_name_public.out").read_text()
    live.answer("xml_locate dialplan context name public", recorded.replace(' continue="true">', ">", 1))
    findings = broken(examine(live, fail2ban.socket))
    assert findings["screen public"].what == (
        'extension fs_guard_screen runs fs_guard.screen without continue="true": the dialplan stops')


def test_a_context_freeswitch_does_not_have(live, fail2ban):
    found = doctor.examine(live.probes(fail2ban.socket), str(live.config), ["public", "internal"])
    findings = broken({finding.link: finding for finding in found})
    assert list(findings) == ["screen internal"]
    assert findings["screen internal"].what.startswith("FreeSWITCH has no context internal (xml_locate answered: -ERR")


def test_the_register_hook_not_running(live, fail2ban):
    live.write_status({**live.status(), "register_failure_hook": {"running": False, "since": None}})
    findings = broken(examine(live, fail2ban.socket))
    assert list(findings) == ["register hook"]
    assert findings["register hook"].fix.startswith(f"fs-guard install --conf-dir {live.conf}   # the startup-script")


def test_the_register_hook_installed_on_disk_needs_a_restart(live, fail2ban, installed):
    live.write_status({**live.status(), "register_failure_hook": {"running": False, "since": None}})
    findings = broken(examine(live, fail2ban.socket))
    assert list(findings) == ["register hook"]
    assert findings["register hook"].fix == "systemctl restart freeswitch"


def test_a_configuration_freeswitch_rejected(live, fail2ban):
    report = live.status()
    report["config"]["last_error"] = "fail2ban.deny_prefix: 7 is not of type 'string'"
    live.write_status(report)
    findings = broken(examine(live, fail2ban.socket))
    assert list(findings) == ["config"]
    assert findings["config"].what.endswith("keeps its last good configuration: fail2ban.deny_prefix: 7 is not "
                                            "of type 'string'")
    assert findings["config"].fix == f"fs-guard check-config {live.config}"


def test_a_configuration_file_that_is_not_valid_on_disk(live, fail2ban):
    live.config.write_text(json.dumps({"fail2ban": {"denny_prefix": ["00"]}}))
    findings = examine(live, fail2ban.socket)
    assert list(broken(findings)) == ["config"]
    assert "denny_prefix" in findings["config"].what and findings["config"].fix.startswith("fs-guard check-config")
    assert findings["cluster"].status == findings["metrics"].status == doctor.UNKNOWN


def test_freeswitch_running_on_the_built_in_defaults(live, fail2ban):
    report = live.status()
    report["config"]["file"] = None
    live.write_status(report)
    live.config.unlink()
    findings = broken(examine(live, fail2ban.socket))
    assert list(findings) == ["config"]
    assert findings["config"].what == f"FreeSWITCH runs on the built-in defaults: no good file at {live.config}"


def test_the_cli_reading_another_file_than_freeswitch(live, fail2ban, tmp_path):
    elsewhere = tmp_path / "elsewhere.json"
    found = doctor.examine(live.probes(fail2ban.socket), str(elsewhere))
    findings = broken({f.link: f for f in found})
    assert list(findings) == ["config"]
    assert findings["config"].fix == f"export FS_GUARD_CONFIG={live.config}"


def test_a_missing_ban_log(live, fail2ban, tmp_path):
    report = live.status()
    report["ban_log"] = str(tmp_path / "nothing-here.log")
    live.write_status(report)
    findings = broken(examine(live, fail2ban.socket))
    assert list(findings) == ["ban log", "fail2ban"]  # and so no jail reads it
    assert findings["ban log"].fix == f"install -o root -g root -m 0640 /dev/null {tmp_path / 'nothing-here.log'}"


def test_a_ban_log_freeswitch_cannot_write(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs").chmod(0o755)
    path = tmp_path / "logs" / "ban.log"
    path.write_text("")
    path.chmod(0o644)
    owner = os.stat(path)
    fs_user = doctor.Identity("freeswitch", owner.st_uid + 4242, 4242, frozenset({4242}), "the freeswitch account")
    finding = doctor.check_ban_log({"ban_log": str(path), "counters": {"ban_log_errors": 3},
                                    "counters_since": "2026-12-02T13:37:32.728+00:00"}, fs_user, os.stat)
    assert finding.status == doctor.PROBLEM
    assert finding.what.startswith(f"freeswitch (the freeswitch account) cannot write {path} (owner ")
    assert finding.what.endswith("mode 0644); 3 write error(s) since 2026-12-02T13:37:32.728+00:00")
    assert finding.fix == f"chown freeswitch:4242 {path}"
    path.chmod(0o666)
    assert doctor.check_ban_log({"ban_log": str(path)}, fs_user, os.stat).status == doctor.OK


def test_a_ban_log_in_a_directory_freeswitch_cannot_enter(tmp_path):
    directory = tmp_path / "private"
    directory.mkdir()
    directory.chmod(0o700)
    (directory / "ban.log").write_text("")
    (directory / "ban.log").chmod(0o666)
    fs_user = doctor.Identity("freeswitch", os.stat(directory).st_uid + 4242, 4242, frozenset({4242}), "pid 1")
    finding = doctor.check_ban_log({"ban_log": str(directory / "ban.log")}, fs_user, os.stat)
    assert finding.status == doctor.PROBLEM and finding.fix.startswith(f"chmod o+x {directory}")


def test_freeswitch_user_is_read_from_the_running_process(tmp_path):
    (tmp_path / doctor.PID_FILE).write_text(f"{os.getpid()}\n")
    found = doctor.freeswitch_identity(str(tmp_path))
    assert (found.uid, found.gid) == (os.geteuid(), os.getegid())
    assert found.how == f"the running FreeSWITCH's user, pid {os.getpid()}"


def test_no_jail_reads_the_ban_log(live, fail2ban, tmp_path):
    other = tmp_path / "other.log"
    other.write_text("")
    report = live.status()
    report["ban_log"] = str(other)
    live.write_status(report)
    findings = broken(examine(live, fail2ban.socket))
    assert list(findings) == ["fail2ban"]
    assert findings["fail2ban"].what == f"jail fs-guard reads {fail2ban.logpath}, not {other}"
    assert findings["fail2ban"].fix.startswith(f"set logpath = {other} in /etc/fail2ban/jail.d/fs-guard.local")


def test_fail2ban_not_running(live, fail2ban, tmp_path):
    findings = broken(examine(live, tmp_path / "no-such.sock"))
    assert list(findings) == ["fail2ban"]
    assert findings["fail2ban"].what == "fail2ban is not running"
    assert findings["fail2ban"].fix == "systemctl start fail2ban"


def test_the_home_region_is_the_country_freeswitch_was_given(live, fail2ban):
    live.answer("global_getvar default_country", "GB\n")
    findings = examine(live, fail2ban.socket, read_config=_with(live, {"dialling": {"region": "GB"}}))
    assert findings["home region"].status == doctor.OK, findings["home region"]
    assert findings["home region"].what == "dialling.region GB is FreeSWITCH's default_country"


def test_a_home_region_that_is_not_freeswitchs_default_country(live, fail2ban):
    live.answer("global_getvar default_country", "US\n")  # stock vars.xml, left as it was
    findings = broken(examine(live, fail2ban.socket, read_config=_with(live, {
        "dialling": {"region": "GB"}, "contexts": {"lab": {"dialling": {"region": "US"}}}})))
    assert list(findings) == ["home region"]
    assert findings["home region"].what.startswith(
        "dialling.region GB (the top level) is not FreeSWITCH's default_country US")
    assert "context lab" not in findings["home region"].what
    assert findings["home region"].fix.startswith(f'set "region": "US" in {live.config}   # or, if the switch is in '
                                                  "GB: default_country=GB in vars.xml")


def test_without_a_default_country_there_is_nothing_to_compare(live, fail2ban):
    findings = examine(live, fail2ban.socket, read_config=_with(live, {"dialling": {"region": "GB"}}))
    assert findings["home region"].status == doctor.OK  # the fake answers -ERR no reply, as FreeSWITCH does
    assert findings["home region"].what == ("dialling.region GB; nothing to compare it with: FreeSWITCH has no "
                                            "default_country")


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(need_redis(), tmp_path / "redis").start()
    yield server
    server.stop()


def _with(live: Live, section: dict):
    """read_config: the file's configuration with ``section`` added (compiled, as a loaded file is)."""
    def read(path):
        return compile_config({"deny_prefix": ["00"], **section}, path)
    return read


def test_a_cluster_that_answers(live, fail2ban, redis_server):
    findings = examine(live, fail2ban.socket, read_config=_with(live, {"cluster": {"url": redis_server.url}}))
    assert findings["cluster"].status == doctor.OK
    assert findings["cluster"].what.startswith(f"{redis_server.url}: PING answered in ")


def test_a_cluster_that_does_not_answer(live, fail2ban):
    need_redis()
    url = f"redis://127.0.0.1:{free_port()}/0"
    findings = broken(examine(live, fail2ban.socket, read_config=_with(live, {"cluster": {"url": url}})))
    assert list(findings) == ["cluster"]
    assert findings["cluster"].what.startswith(f"{url} does not answer a PING: ")


def test_a_cluster_setting_that_cannot_work_is_told_apart_from_a_redis_that_does_not_answer(
        live, fail2ban, redis_server):
    url = redis_server.url[:-len("/0")] + "/99"
    findings = broken(examine(live, fail2ban.socket, read_config=_with(live, {"cluster": {"url": url}})))
    assert list(findings) == ["cluster"]
    assert findings["cluster"].what == (f"the cluster setting cannot work: fail2ban.cluster.url: '{url}': this Redis "
                                        "has no such database (it has 0 to 15 unless its 'databases' setting says "
                                        "more): name one it has")
    assert findings["cluster"].fix.startswith("fs-guard check-config")


def test_a_node_without_redis_py_while_the_cli_has_it(live, fail2ban, redis_server):
    """The command line's Python has redis-py, the one FreeSWITCH runs does not (its status says so)."""
    report = live.status()
    report["cluster"] = {"state": "misconfigured", "since": "2026-11-25T09:58:12.120+00:00",
                         "last_error": "configuration error: redis-py is not installed: pip install 'fs-guard[cluster]'"}
    live.write_status(report)
    findings = broken(examine(live, fail2ban.socket, read_config=_with(live, {"cluster": {"url": redis_server.url}})))
    assert list(findings) == ["cluster"]
    assert findings["cluster"].what == (f"{redis_server.url} answers here, but FreeSWITCH's node cannot use it: "
                                        "configuration error: redis-py is not installed: pip install "
                                        "'fs-guard[cluster]'")
    assert findings["cluster"].fix.startswith("fs-guard install --package '.[cluster]'")


class _Metrics(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/metrics" else 404)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def metrics_server():
    def serve(body: bytes):
        handler = type("Handler", (_Metrics,), {"body": body})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return f"127.0.0.1:{server.server_address[1]}"

    started = []
    yield serve
    for server in started:
        server.shutdown()
        server.server_close()


def test_a_metrics_endpoint_that_answers(live, fail2ban, metrics_server):
    listen = metrics_server(b'# HELP fs_guard_build_info fs-guard\nfs_guard_build_info{version="0.1.0"} 1.0\n')
    findings = examine(live, fail2ban.socket, read_config=_with(live, {"metrics": {"listen": listen}}))
    assert findings["metrics"].status == doctor.OK
    assert findings["metrics"].what == f"http://{listen}/metrics answers"


def test_a_metrics_endpoint_that_is_not_fs_guards(live, fail2ban, metrics_server):
    listen = metrics_server(b"node_load1 0.5\n")
    findings = broken(examine(live, fail2ban.socket, read_config=_with(live, {"metrics": {"listen": listen}})))
    assert list(findings) == ["metrics"]
    assert findings["metrics"].what == f"http://{listen}/metrics answered HTTP 200 without fs_guard_build_info: " \
                                       "not fs-guard's endpoint"


def test_a_metrics_setting_without_listen_is_looked_for_at_its_default_address(live, fail2ban, metrics_server):
    findings = examine(live, fail2ban.socket, read_config=_with(live, {"metrics": {}}))
    assert findings["metrics"].what.startswith("http://127.0.0.1:15248/metrics ")


def test_a_metrics_endpoint_that_does_not_answer(live, fail2ban):
    listen = f"127.0.0.1:{free_port()}"
    findings = broken(examine(live, fail2ban.socket, read_config=_with(live, {"metrics": {"listen": listen}})))
    assert list(findings) == ["metrics"]
    assert findings["metrics"].what.startswith(f"http://{listen}/metrics does not answer: ")


def test_the_command_prints_the_fix_under_a_broken_link_and_exits_1(live, fail2ban, on_path, run_cli):
    live.answer("module_exists mod_python3", live.recorded("module_exists_mod_nope.out"))
    code, out = run_cli(*doctor_args(fail2ban)).merged()
    assert code == 1, out
    at = out.splitlines().index("PROBLEM  mod_python3     not loaded: no python application, no screen")
    assert out.splitlines()[at + 1].strip().startswith('fix: fs_cli -x "load mod_python3"')


def test_doctor_changes_nothing(live, fail2ban):
    def state():
        log = os.stat(fail2ban.logpath)
        return fstree.snapshot(live.conf, live.answers), (log.st_size, log.st_mode, log.st_mtime_ns)

    before = state()
    examine(live, fail2ban.socket)
    assert state() == before
