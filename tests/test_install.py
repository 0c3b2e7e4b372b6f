"""``fs-guard install`` / ``uninstall`` on FreeSWITCH-shaped trees (tests/fstree.py).

The central proof: after install, the configuration read as FreeSWITCH's preprocessor
reads it has fs_guard.screen as the first action of every call in public and default,
and that action, run as mod_python3 runs it, rejects a toll-fraud number.
"""

from __future__ import annotations

import json
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import fsctl
import pytest
from modpython import run_app

import fstree
from fs_guard.fsconf import bundle, fsmodel, install
from fs_guard.runtime.config import load_config

SCREEN_INCLUDE = '<X-PRE-PROCESS cmd="include" data="fs_guard/screen.xml"/>'


class Site:
    """A FreeSWITCH configuration, a fail2ban directory and a log directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.tree = fstree.stock(tmp_path / "etc" / "freeswitch")
        self.conf = self.tree.root
        self.fail2ban = tmp_path / "etc" / "fail2ban"
        self.log = tmp_path / "var" / "log" / "freeswitch"
        self.scripts = tmp_path / "usr" / "share" / "freeswitch" / "scripts"
        self.fail2ban.mkdir(parents=True)
        self.log.mkdir(parents=True)
        self.scripts.mkdir(parents=True)
        # mod_python3's Python, for the tests about the configuration: this one, which imports
        # fs-guard already (test_install_python.py puts it into a script directory)
        self.python = ("--python", sys.executable, "--script-dir", str(self.scripts), "--check-import")

    def args(self, *extra: str):
        conf = ["--conf-dir", str(self.conf), "--fail2ban-dir", str(self.fail2ban), "--log-dir", str(self.log)]
        return [*conf, *self.python, *extra]

    def snapshot(self):
        return fstree.snapshot(self.conf, self.fail2ban, self.log)

    def config(self) -> fsmodel.FsConfig:
        return fsmodel.load(str(self.conf))


@pytest.fixture
def site(tmp_path):
    return Site(tmp_path)


@pytest.fixture(autouse=True)
def bin_dir(tmp_path, monkeypatch):
    """PATH is one empty directory: no real fs_cli is asked; a test may put a fake one there."""
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    return path


def fake_fs_cli(bin_dir: Path, body: str) -> None:
    script = bin_dir / "fs_cli"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)


def answering_fs_cli(bin_dir: Path, conf_dir, log_dir) -> None:
    """fs_cli of a running FreeSWITCH with these directories (what ``-x "global_getvar ..."`` prints)."""
    fake_fs_cli(
        bin_dir,
        f'case "$1 $2" in\n'
        f'  "-x global_getvar conf_dir") echo "{conf_dir}" ;;\n'
        f'  "-x global_getvar log_dir") echo "{log_dir}" ;;\n'
        '  *) echo "-ERR no reply" ;;\n'
        "esac\n",
    )


def test_a_file_dropped_into_dialplan_public_does_not_run_first(site):
    """The stock-layout fact install is built on (docs/freeswitch.md)."""
    site.tree.write("dialplan/public/fs_guard_screen.xml", bundle.read(bundle.FREESWITCH, install.SCREEN_FILE).decode())
    public = site.config().context("public")
    assert fsmodel.is_screen(public.findall("extension")[-1].find("condition").find("action"))
    assert not fsmodel.screen_runs_first(public)


def test_after_install_the_screen_is_the_first_action_of_public_and_default(site, run_cli):
    before = site.config()
    assert not any(fsmodel.screen_runs_first(before.context(name)) for name in ("public", "default"))

    code, out = run_cli("install", *site.args()).merged()
    assert code == 0, out

    after = site.config()
    for name in ("public", "default"):
        context = after.context(name)
        action, extension = fsmodel.leading_action(context)
        assert (action.get("application"), action.get("data")) == ("python", "fs_guard.screen")
        assert extension.get("continue") == "true"
        assert action.start.path == str(site.tree.path("dialplan/fs_guard/screen.xml"))
        # everything that was in the context still follows, in the same order
        old = [e.get("name") for e in before.context(name).findall("extension")]
        assert [e.get("name") for e in context.findall("extension")] == ["fs_guard_screen"] + old

        # ... and that first action, run as mod_python3 runs it, rejects a scanner's call
        session = fsctl.call_session(
            destination_number="011972599123456", context=name, sip_network_ip="203.0.113.9"
        )
        run_app(action.get("data"), session)
        assert session.hangupCause() == "CALL_REJECTED"


def test_install_edits_only_what_it_must_and_keeps_a_backup_of_each_file(site, run_cli):
    originals = {rel: site.tree.read(rel) for rel in fstree.STOCK}
    code, out = run_cli("install", *site.args()).merged()
    assert code == 0, out
    edited = {rel for rel in fstree.STOCK if site.tree.read(rel) != originals[rel]}
    assert edited == {
        "dialplan/public.xml",
        "dialplan/default.xml",
        "autoload_configs/modules.conf.xml",
        "autoload_configs/python.conf.xml",
    }
    manifest = install.load_manifest(str(site.conf))
    for rel in edited:
        entry = manifest.entry(str(site.tree.path(rel)))
        backup = site.conf / ".fs-guard" / entry.backup
        assert backup.read_text() == originals[rel]
        assert entry.backup in out  # the operator is told where it is
    # only lines were added or (un)commented: every original line but one is still there
    public = site.tree.read("dialplan/public.xml").splitlines()
    assert [line for line in public if SCREEN_INCLUDE not in line] == originals["dialplan/public.xml"].splitlines()
    modules = site.tree.read("autoload_configs/modules.conf.xml")
    assert "    <load module=\"mod_python3\"/>\n" in modules and "<!-- <load module=\"mod_python3\"/> -->" not in modules


def test_mod_python3_is_loaded_and_the_events_hook_joins_the_other_params(site, run_cli):
    assert run_cli("install", *site.args())[0] == 0
    config = site.config()
    assert "mod_python3" in fsmodel.loaded_modules(config)
    assert fsmodel.startup_scripts(config) == ["billing.sync", "fs_guard.events"]
    settings = config.configuration("python.conf").find("settings")
    assert [p.get("name") for p in settings.findall("param")] == ["xml-handler-bindings", "startup-script", "startup-script"]


def test_a_missing_python_conf_and_a_modules_conf_without_the_comment(site, run_cli):
    site.tree.path("autoload_configs/python.conf.xml").unlink()
    site.tree.replace("autoload_configs/modules.conf.xml", '    <!-- <load module="mod_python3"/> -->\n', "")
    assert run_cli("install", *site.args())[0] == 0
    config = site.config()
    assert "mod_python3" in fsmodel.loaded_modules(config)
    assert fsmodel.startup_scripts(config) == ["fs_guard.events"]
    assert site.tree.read("autoload_configs/python.conf.xml") == bundle.read(bundle.FREESWITCH, install.PYTHON_CONF_FILE).decode()
    assert site.tree.read("autoload_configs/modules.conf.xml").endswith(
        '    <load module="mod_lua"/>\n    <load module="mod_python3"/>\n  </modules>\n</configuration>\n'
    )


def test_the_fail2ban_jail_reads_the_ban_log_in_the_log_directory(site, run_cli):
    assert run_cli("install", *site.args())[0] == 0
    jail = (site.fail2ban / "jail.d" / "fs-guard.conf").read_text()
    assert f"\nlogpath  = {site.log}/fs-guard-ban.log\n" in jail
    assert jail.replace(str(site.log), "/var/log/freeswitch") == bundle.read(bundle.FAIL2BAN, install.JAIL_FILE).decode()
    assert (site.fail2ban / "filter.d" / "fs-guard.conf").read_bytes() == bundle.read(bundle.FAIL2BAN, install.FILTER_FILE)
    ban_log = site.log / "fs-guard-ban.log"
    assert ban_log.read_bytes() == b"" and oct(ban_log.stat().st_mode & 0o777) == "0o640"


def test_an_existing_configuration_is_never_overwritten_and_names_the_ban_log(site, run_cli):
    elsewhere = site.log.parent / "not-there"
    mine = {"fail2ban": {"filename": f"{elsewhere}/toll.log", "deny_prefix": ["00"]}}
    site.tree.write("fs_guard.json", json.dumps(mine))
    before = site.tree.path("fs_guard.json").read_bytes()
    code, out = run_cli("install", *site.args()).merged()
    assert code == 0, out
    assert site.tree.path("fs_guard.json").read_bytes() == before
    assert f"logpath  = {elsewhere}/toll.log\n" in (site.fail2ban / "jail.d" / "fs-guard.conf").read_text()
    assert f"{elsewhere} does not exist" in out and not elsewhere.exists()


def test_the_shipped_configuration_is_installed_when_there_is_none(site, run_cli):
    assert run_cli("install", *site.args())[0] == 0
    installed = site.tree.path("fs_guard.json")
    assert installed.read_bytes() == bundle.read(bundle.FREESWITCH, "fs_guard.json")
    config = load_config(str(installed))
    assert {"00", "011", "+"} <= config.rules_for("public").deny.prefixes
    assert "friendly-scanner" in config.base.deny_user_agents


def test_the_shipped_configuration_gets_the_country_freeswitch_was_given(site, run_cli):
    site.tree.replace("vars.xml", "default_country=US", "default_country=GB")
    code, out = run_cli("install", *site.args()).merged()
    assert code == 0, out
    installed = site.tree.path("fs_guard.json").read_bytes()
    line = site.tree.line_of("vars.xml", "default_country")
    assert f"home region GB (vars.xml's default_country (vars.xml:{line})) written to " in out
    assert installed == bundle.read(bundle.FREESWITCH, "fs_guard.json").replace(
        b'"dialling": {"region": "US"}', b'"dialling": {"region": "GB"}')
    assert load_config(str(site.tree.path("fs_guard.json"))).base.classifier.region == "GB"


def test_region_overrides_freeswitchs_country(site, run_cli):
    code, out = run_cli("install", *site.args("--region", "de")).merged()
    assert code == 0, out
    assert "home region DE (--region) written to" in out
    assert load_config(str(site.tree.path("fs_guard.json"))).raw["dialling"] == {"region": "DE"}


@pytest.mark.parametrize(
    "vars_line, option, message",
    [
        ("default_country=UK", (), "vars.xml's default_country (vars.xml:"),
        ("default_country=UK", (), "'UK' is not an ISO 3166 region code libphonenumber knows; did you mean 'GB'?"),
        ("default_areacode=918", (), "vars.xml sets no default_country, and the shipped rules need your country"),
        ("default_country=US", ("--region", "XK9"), "--region: 'XK9' is not an ISO 3166 region code"),
        ("default_country=US", ("--region", " "), "--region is empty"),
    ],
)
def test_a_country_that_is_missing_or_unknown_is_refused_and_writes_nothing(site, run_cli, vars_line, option, message):
    site.tree.replace("vars.xml", '<X-PRE-PROCESS cmd="set" data="default_country=US"/>',
                      f'<X-PRE-PROCESS cmd="set" data="{vars_line}"/>')
    before = site.snapshot()
    code, out = run_cli("install", *site.args(*option)).merged()
    assert code == 2 and message in out and "--region" in out and "Traceback" not in out, out
    assert site.snapshot() == before


def test_an_existing_configuration_keeps_its_region_and_install_says_where_freeswitch_differs(site, run_cli):
    mine = {"fail2ban": {"dialling": {"region": "GB"}, "deny_number_types": ["premium_rate"],
                         "contexts": {"lab": {"dialling": {"region": "US"}}}}}
    site.tree.write("fs_guard.json", json.dumps(mine))
    before = site.tree.path("fs_guard.json").read_bytes()
    code, out = run_cli("install", *site.args("--region", "FR")).merged()
    assert code == 0, out
    assert site.tree.path("fs_guard.json").read_bytes() == before
    assert "dialling.region GB (the top level) is not FreeSWITCH's default_country US" in out
    assert "context lab" not in out  # the lab context's US is FreeSWITCH's own
    assert "--region FR is not applied: install never changes your configuration" in out


def test_a_second_install_changes_nothing(site, run_cli):
    assert run_cli("install", *site.args())[0] == 0
    first = site.snapshot()
    code, out = run_cli("install", *site.args()).merged()
    assert code == 0 and "nothing to change" in out
    assert site.snapshot() == first


def test_dry_run_shows_a_unified_diff_and_touches_nothing(site, run_cli):
    before = site.snapshot()
    code, out = run_cli("install", *site.args("--dry-run")).merged()
    assert code == 0
    assert site.snapshot() == before
    assert "--- a/dialplan/public.xml\n+++ b/dialplan/public.xml\n" in out
    assert f"+    {SCREEN_INCLUDE}\n" in out
    assert '-    <!-- <load module="mod_python3"/> -->\n+    <load module="mod_python3"/>\n' in out
    assert '+    <param name="startup-script" value="fs_guard.events"/>\n' in out
    assert "--- /dev/null\n+++ b/fs_guard.json\n" in out
    assert f"+logpath  = {site.log}/fs-guard-ban.log\n" in out


def test_install_says_what_to_run_next(site, run_cli):
    out = run_cli("install", *site.args()).merged()[1]
    for step in ('fs_cli -x "reloadxml"', 'fs_cli -x "load mod_python3"', "systemctl restart fail2ban", "fs-guard audit"):
        assert step in out


def test_uninstall_restores_every_file_byte_for_byte(site, run_cli):
    site.tree.write("dialplan/default.xml", site.tree.read("dialplan/default.xml").replace("\n", "\r\n"))
    before = fstree.files(site.snapshot())
    assert run_cli("install", *site.args())[0] == 0
    assert f"{SCREEN_INCLUDE}\r\n" in site.tree.read("dialplan/default.xml")  # the file's own line ends
    code, out = run_cli("uninstall", "--conf-dir", str(site.conf)).merged()
    assert code == 0, out
    assert fstree.files(site.snapshot()) == before  # same paths (directories too), same bytes


def test_uninstall_dry_run_touches_nothing(site, run_cli):
    assert run_cli("install", *site.args())[0] == 0
    installed = site.snapshot()
    code, out = run_cli("uninstall", "--conf-dir", str(site.conf), "--dry-run").merged()
    assert code == 0 and f"-    {SCREEN_INCLUDE}\n" in out
    assert site.snapshot() == installed


def test_uninstall_takes_out_only_its_own_edits_from_a_file_changed_since(site, run_cli):
    assert run_cli("install", *site.args())[0] == 0
    mine = '    <extension name="added_after_install"/>\n'
    site.tree.replace("dialplan/public.xml", "  </context>\n", mine + "  </context>\n")
    site.tree.write("fs_guard.json", '{"fail2ban": {"deny_prefix": ["00", "1900"]}}')
    code, out = run_cli("uninstall", "--conf-dir", str(site.conf)).merged()
    assert code == 0, out
    assert site.tree.read("dialplan/public.xml") == fstree.PUBLIC_XML.replace("  </context>\n", mine + "  </context>\n")
    assert site.tree.path("fs_guard.json").exists() and "fs_guard.json: created by install and changed since" in out
    assert not (site.conf / ".fs-guard").exists()


def test_uninstall_keeps_a_file_whose_fs_guard_lines_were_changed(site, run_cli):
    assert run_cli("install", *site.args())[0] == 0
    site.tree.replace("dialplan/public.xml", SCREEN_INCLUDE, SCREEN_INCLUDE.replace("/>", " />"))
    changed = site.tree.read("dialplan/public.xml")
    code, out = run_cli("uninstall", "--conf-dir", str(site.conf)).merged()
    assert code == 1 and "kept: dialplan/public.xml" in out
    assert site.tree.read("dialplan/public.xml") == changed
    backup = site.conf / ".fs-guard" / install.load_manifest(str(site.conf)).entry(str(site.tree.path("dialplan/public.xml"))).backup
    assert backup.read_text() == fstree.PUBLIC_XML
    assert site.tree.read("dialplan/default.xml") == fstree.DEFAULT_XML  # the others were restored


def test_a_context_split_across_files_and_lines(site, run_cli):
    """The context tag on one line with its first extension, in a file included from a subdirectory."""
    site.tree.write("dialplan/public.xml", '<include>\n<X-PRE-PROCESS cmd="include" data="in/public_context.xml"/>\n</include>\n')
    site.tree.write(
        "dialplan/in/public_context.xml",
        '<include>\n  <context name="public"><extension name="first"><condition field="destination_number" '
        'expression="^1$"><action application="answer"/></condition></extension>\n  </context>\n</include>\n',
    )
    assert run_cli("install", *site.args())[0] == 0
    assert '<X-PRE-PROCESS cmd="include" data="../fs_guard/screen.xml"/>' in site.tree.read("dialplan/in/public_context.xml")
    public = site.config().context("public")
    assert fsmodel.screen_runs_first(public)
    assert [e.get("name") for e in public.findall("extension")] == ["fs_guard_screen", "first"]


def test_a_second_screen_further_down_is_pointed_out(site, run_cli):
    site.tree.write("dialplan/public/fs_guard_screen.xml", bundle.read(bundle.FREESWITCH, install.SCREEN_FILE).decode())
    out = run_cli("install", *site.args()).merged()[1]
    assert "dialplan/public/fs_guard_screen.xml" in out and "runs fs_guard.screen a second time" in out


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda tree: tree.path("freeswitch.xml").unlink(), "not a FreeSWITCH configuration"),
        (lambda tree: tree.write("dialplan/features.xml", "<include>\n<context>\n<extension>\n</context>\n"), "features.xml:4"),
        (lambda tree: tree.replace("dialplan/default.xml", 'name="default"', 'name="$${ctx}"'), 'context name="default"'),
    ],
)
def test_install_refuses_and_writes_nothing(site, run_cli, spoil, message):
    spoil(site.tree)
    before = site.snapshot()
    code, out = run_cli("install", *site.args()).merged()
    assert code == 2 and message in out
    assert site.snapshot() == before


def test_an_unknown_context_is_refused(site, run_cli):
    code, out = run_cli("install", *site.args("--context", "public", "--context", "nosuch")).merged()
    assert code == 2 and 'no <context name="nosuch">' in out


def test_the_log_directory_is_found_as_fs_guard_will_see_it(tmp_path):
    conf = tmp_path / "usr" / "local" / "freeswitch" / "conf"
    conf.mkdir(parents=True)
    assert install.guess_log_dir(str(conf), {"log_dir": "/data/fslog"})[0] == "/data/fslog"
    assert install.guess_log_dir(str(conf), {})[0] == "/var/log/freeswitch"
    (conf.parent / "log").mkdir()
    assert install.guess_log_dir(str(conf), {})[0] == str(conf.parent / "log")
    packaged = tmp_path / "etc" / "freeswitch"
    assert install.guess_log_dir(str(packaged), {})[0] == "/var/log/freeswitch"
    (tmp_path / "var" / "log" / "freeswitch").mkdir(parents=True)
    assert install.guess_log_dir(str(packaged), {})[0] == str(tmp_path / "var" / "log" / "freeswitch")
    assert install.guess_log_dir(str(packaged), {"log_dir": "/data/fslog"})[0] == "/data/fslog"


def test_a_current_source_build_logs_under_its_prefix(tmp_path, run_cli):
    """Built from source: PREFIX/etc/freeswitch and PREFIX/var/log/freeswitch (docs/freeswitch.md)."""
    prefix = tmp_path / "usr" / "local" / "freeswitch"
    tree = fstree.stock(prefix / "etc" / "freeswitch")
    logs = prefix / "var" / "log" / "freeswitch"
    logs.mkdir(parents=True)
    fail2ban = tmp_path / "fail2ban"
    fail2ban.mkdir()
    python = ("--python", sys.executable, "--check-import")
    code, out = run_cli("install", "--conf-dir", str(tree.root), "--fail2ban-dir", str(fail2ban), *python).merged()
    assert code == 0, out
    assert f"logpath  = {logs}/fs-guard-ban.log\n" in (fail2ban / "jail.d" / "fs-guard.conf").read_text()
    assert f"ban log: {logs}/fs-guard-ban.log (log_dir {logs}: source-build layout under {prefix} (" in out
    assert (logs / "fs-guard-ban.log").exists() and "does not exist" not in out


def test_check_config_and_test_name_the_ban_log_install_put_in_the_jail(site, tmp_path, run_cli):
    """One resolution of log_dir (install.resolve_log_dir): the --log-dir install was given is kept."""
    chosen = tmp_path / "chosen-logs"
    chosen.mkdir()
    code, out = run_cli("install", "--conf-dir", str(site.conf), "--fail2ban-dir", str(site.fail2ban),
                        "--log-dir", str(chosen), *site.python).merged()
    assert code == 0, out
    ban_log = chosen / "fs-guard-ban.log"
    assert f"logpath  = {ban_log}\n" in (site.fail2ban / "jail.d" / "fs-guard.conf").read_text()
    how = "given to fs-guard install --log-dir, kept in .fs-guard/manifest.json"
    config = str(site.conf / "fs_guard.json")
    code, out = run_cli("check-config", config).merged()
    assert code == 0 and f"ban log:       {ban_log} (log_dir {chosen}: {how})\n" in out
    code, out = run_cli("test", "0044", "--ip", "203.0.113.7", "--config", config).merged()
    assert f"ban line: would be written: ip[203.0.113.7] to {ban_log} (log_dir {chosen}: {how})\n" in out
    # installing again without --log-dir keeps it: the jail does not move
    code, out = run_cli("install", "--conf-dir", str(site.conf), "--fail2ban-dir", str(site.fail2ban),
                        *site.python).merged()
    assert code == 0 and f"fs-guard is installed in {site.conf}: nothing to change" in out


def test_test_warns_of_a_context_neither_screened_by_the_dialplan_nor_in_contexts(site, run_cli):
    code, out = run_cli("install", *site.args("--context", "public")).merged()
    assert code == 0, out
    config = str(site.conf / "fs_guard.json")
    assert run_cli("test", "1001", "--context", "public", "--config", config).merged()[1].count("warning") == 0
    code, out = run_cli("test", "1001", "--context", "default", "--config", config).merged()
    assert ("fs-guard: warning: 'default' is neither a context the screen runs in (public: the dialplan in "
            f"{site.conf}) nor an entry of contexts, so no live call is decided like this (a typo?); the top-level "
            "rules decided\n") in out
    site.tree.replace("dialplan/fs_guard/screen.xml", 'data="fs_guard.screen"', 'data="fs_guard.screen office"')
    assert "warning" not in run_cli("test", "1001", "--context", "office", "--config", config).merged()[1]


def test_a_relative_log_dir_is_kept_absolute(site, tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(site.log.parent)
    code, out = run_cli("install", "--conf-dir", str(site.conf), "--fail2ban-dir", str(site.fail2ban),
                        "--log-dir", site.log.name, *site.python).merged()
    assert code == 0, out
    assert f"logpath  = {site.log}/fs-guard-ban.log\n" in (site.fail2ban / "jail.d" / "fs-guard.conf").read_text()
    assert install.resolve_log_dir(str(site.conf))[0] == str(site.log)


def test_vars_xml_log_dir_is_used_for_the_jail(site, run_cli):
    elsewhere = site.log.parent / "fs"
    elsewhere.mkdir()
    site.tree.replace("vars.xml", "</include>", f'  <X-PRE-PROCESS cmd="set" data="log_dir={elsewhere}"/>\n</include>')
    code, out = run_cli("install", "--conf-dir", str(site.conf), "--fail2ban-dir", str(site.fail2ban),
                        *site.python).merged()
    assert code == 0, out
    assert f"logpath  = {elsewhere}/fs-guard-ban.log\n" in (site.fail2ban / "jail.d" / "fs-guard.conf").read_text()


def test_a_running_freeswitch_on_this_configuration_is_asked_first(site, bin_dir, tmp_path, run_cli):
    answered = site.log.parent / "fs-answered"
    answered.mkdir()
    site.tree.replace("vars.xml", "</include>", f'  <X-PRE-PROCESS cmd="set" data="log_dir={site.log}"/>\n</include>')
    (tmp_path / "conf-link").symlink_to(site.conf)  # the same directory, by another name
    answering_fs_cli(bin_dir, tmp_path / "conf-link", answered)
    code, out = run_cli("install", "--conf-dir", str(site.conf), "--fail2ban-dir", str(site.fail2ban),
                        *site.python).merged()
    assert code == 0, out
    assert f"logpath  = {answered}/fs-guard-ban.log\n" in (site.fail2ban / "jail.d" / "fs-guard.conf").read_text()
    assert (
        f'ban log: {answered}/fs-guard-ban.log (log_dir {answered}: '
        'the running FreeSWITCH answered fs_cli -x "global_getvar log_dir")'
    ) in out


def test_the_log_dir_of_a_freeswitch_running_on_another_configuration_is_not_used(site, bin_dir, run_cli):
    answering_fs_cli(bin_dir, "/usr/local/freeswitch/etc/freeswitch", "/usr/local/freeswitch/var/log/freeswitch")
    code, out = run_cli("install", "--conf-dir", str(site.conf), "--fail2ban-dir", str(site.fail2ban),
                        *site.python).merged()
    assert code == 0, out
    assert f"logpath  = {site.log}/fs-guard-ban.log\n" in (site.fail2ban / "jail.d" / "fs-guard.conf").read_text()
    assert "source-build layout" in out
    assert "the running FreeSWITCH reads /usr/local/freeswitch/etc/freeswitch, not this configuration" in out


NOT_ANSWERING = {
    "not-running": 'echo "[ERROR] fs_cli.c:1699 main() Error Connecting [Connection refused]" >&2\nexit 255\n',
    "err": 'echo "-ERR no reply"\n',
    "empty": "echo\n",
    "hangs": f'exec "{sys.executable}" -c "import time; time.sleep(60)"\n',
}


@pytest.mark.parametrize("body", NOT_ANSWERING.values(), ids=list(NOT_ANSWERING))
def test_a_freeswitch_that_does_not_answer_is_not_waited_for(site, bin_dir, monkeypatch, body):
    monkeypatch.setattr(install, "FS_CLI_TIMEOUT", 0.5)
    fake_fs_cli(bin_dir, body)
    started = time.monotonic()
    log_dir, how = install.guess_log_dir(str(site.conf), {})
    assert time.monotonic() - started < 5
    assert log_dir == str(site.log) and how.startswith("source-build layout") and "running" not in how


def test_the_bundle_is_well_formed_and_valid():
    for relative in (install.SCREEN_FILE, install.PYTHON_CONF_FILE, "autoload_configs/acl.conf.xml"):
        ET.fromstring(bundle.read(bundle.FREESWITCH, relative))
    acl = ET.fromstring(bundle.read(bundle.FREESWITCH, "autoload_configs/acl.conf.xml"))
    assert acl.find("network-lists/list").get("default") == "deny"
    load_config(bundle.path(bundle.FREESWITCH, "fs_guard.json"))
