"""``fs-guard audit``: every check fires on a tree with its hole and is silent on a hardened one.

The clean tree is tests/fstree.py's hardened() tree with fs-guard installed; each case
below opens one hole in it and expects findings of that check only, one of them at the
file and line that has to change.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

import fstree
from fs_guard.fsconf import audit, fsmodel, install

GATEWAY_BRIDGE = '<action application="bridge" data="sofia/gateway/example.com/$1"/>'


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The hardened tree with fs-guard installed, once (install proves the import in a child Python)."""
    site = tmp_path_factory.mktemp("site")
    tree = fstree.hardened(site / "conf")
    (site / "fail2ban").mkdir()
    (site / "log").mkdir()
    python = install.PythonTarget(place=False, python=sys.executable, script_dir=str(site))
    install.apply_install(install.plan_install(str(tree.root), str(site / "fail2ban"), str(site / "log"), python=python))
    return tree.root


@pytest.fixture
def clean(installed, tmp_path):
    """A copy of the installed tree for one test to open a hole in."""
    return fstree.FsTree(Path(shutil.copytree(installed, tmp_path / "tree")))


def findings(tree: fstree.FsTree):
    return audit.audit(fsmodel.load(str(tree.root)))


def add_extension(tree, file, name, expression, action):
    tree.replace(
        file,
        "    <X-PRE-PROCESS cmd=\"include\" data=\"public/*.xml\"/>\n" if file.endswith("public.xml") else "</include>",
        f'    <extension name="{name}">\n'
        f'      <condition field="destination_number" expression="{expression}">\n'
        f"        {action}\n"
        "      </condition>\n"
        "    </extension>\n"
        + ("    <X-PRE-PROCESS cmd=\"include\" data=\"public/*.xml\"/>\n" if file.endswith("public.xml") else "</include>"),
    )


def test_the_hardened_tree_with_fs_guard_installed_is_clean(clean, run_cli):
    assert findings(clean) == []
    code, out, _ = run_cli("audit", "--conf-dir", str(clean.root))
    assert code == 0 and "no findings" in out


# (check, severity, file, a text on the line the finding must point at, how to open the hole)
HOLES = [
    (
        "screen-not-first", "critical", "dialplan/public.xml", '<context name="public">',
        lambda t: t.replace("dialplan/public.xml", '    <X-PRE-PROCESS cmd="include" data="fs_guard/screen.xml"/>\n', ""),
    ),
    (
        "screen-not-first", "high", "dialplan/fs_guard/screen.xml", "<extension",
        lambda t: t.replace("dialplan/fs_guard/screen.xml", '"fs_guard_screen" continue="true"', '"fs_guard_screen"'),
    ),
    (
        "python-not-loaded", "critical", "autoload_configs/modules.conf.xml", "<modules>",
        lambda t: t.replace("autoload_configs/modules.conf.xml", '<load module="mod_python3"/>', '<!-- <load module="mod_python3"/> -->'),
    ),
    (
        "events-hook-missing", "medium", "autoload_configs/python.conf.xml", "<configuration",
        lambda t: t.replace("autoload_configs/python.conf.xml", '    <param name="startup-script" value="fs_guard.events"/>\n', ""),
    ),
    (
        "internal-auth-calls-off", "critical", "sip_profiles/internal.xml", '"auth-calls"',
        lambda t: t.replace("vars.xml", "internal_auth_calls=true", "internal_auth_calls=false"),
    ),
    (
        "internal-auth-calls-off", "critical", "sip_profiles/internal.xml", "accept-blind-auth",
        lambda t: t.replace("sip_profiles/internal.xml", '<!-- <param name="accept-blind-auth" value="true"/> -->', '<param name="accept-blind-auth" value="true"/>'),
    ),
    (
        "open-profile", "high", "sip_profiles/external.xml", '"auth-calls"',
        lambda t: t.replace("sip_profiles/external.xml", '    <param name="apply-inbound-acl" value="trusted_sip_peers"/>\n', ""),
    ),
    (
        "unauthenticated-outbound", "critical", "dialplan/public.xml", "sofia/gateway/",
        lambda t: add_extension(t, "dialplan/public.xml", "to_the_carrier", "^(1[2-9]\\d{9})$", GATEWAY_BRIDGE),
    ),
    (
        "unauthenticated-outbound", "critical", "dialplan/default/01_example.com.xml", "sofia/gateway/",
        lambda t: add_extension(
            t, "dialplan/public.xml", "anything_to_default", "^(\\d+)$", '<action application="transfer" data="$1 XML default"/>'
        ),
    ),
    (
        "default-password", "critical", "vars.xml", "default_password=",
        lambda t: (
            t.replace("vars.xml", f"default_password={fstree.STRONG}", "default_password=1234"),
            t.replace("directory/default/1001.xml", f"{fstree.STRONG}-1001", "$${default_password}"),
        ),
    ),
    (
        "weak-password", "high", "directory/default/1000.xml", 'name="password"',
        lambda t: t.replace("directory/default/1000.xml", f"{fstree.STRONG}-1000", "1000"),
    ),
    (
        "weak-password", "critical", "directory/default/1001.xml", 'name="password"',
        lambda t: t.replace("directory/default/1001.xml", f"{fstree.STRONG}-1001", ""),
    ),
    (
        "allow-empty-password", "high", "directory/default.xml", "allow-empty-password",
        lambda t: t.replace("directory/default.xml", "    <params>\n", '    <params>\n      <param name="allow-empty-password" value="true"/>\n'),
    ),
    (  # FreeSWITCH was told another country than fs-guard: national numbers, emergency numbers
        "region-differs", "medium", "fs_guard.json", '"region"',
        lambda t: t.replace("vars.xml", "default_country=US", "default_country=GB"),
    ),
    (  # destination rules without a home region: the file does not load
        "region-missing", "high", "fs_guard.json", '"fail2ban"',
        lambda t: t.replace("fs_guard.json", '"dialling": {"region": "US"},\n', ""),
    ),
    (
        "region-not-set", "info", "fs_guard.json", '"fail2ban"',
        lambda t: t.write("fs_guard.json", '{"fail2ban": {"deny_prefix": ["00", "011", "+"]}}'),
    ),
    (
        "international-outbound", "high", "dialplan/default/01_example.com.xml", "011",
        lambda t: t.replace("dialplan/default/01_example.com.xml", "^(44[1-9]\\d{9})$", "^(011\\d+|00\\d+|\\+\\d+)$"),
    ),
]


@pytest.mark.parametrize("check, severity, file, needle, open_hole", HOLES, ids=[f"{h[0]}-{h[1]}" for h in HOLES])
def test_each_check_fires_on_its_hole(clean, check, severity, file, needle, open_hole):
    open_hole(clean)
    found = findings(clean)
    assert {(f.check, f.severity) for f in found} == {(check, severity)}, found
    assert (file, clean.line_of(file, needle)) in [(f.file, f.line) for f in found]
    assert all(f.message and f.fix for f in found)


@pytest.mark.parametrize("written", [
    '{"fail2ban": {"contexts": ["public"], "deny_countries": ["CU"]}}',
    '{"fail2ban": {"contexts": "public", "deny_countries": ["CU"]}}',
    '{"fail2ban": {"limits": 5, "deny_countries": ["CU"]}}',
])
def test_a_configuration_of_the_wrong_shape_is_a_finding_not_a_traceback(clean, run_cli, written):
    """The region check reads a file that did not load as written: any JSON shape at all."""
    clean.write("fs_guard.json", written)
    code, out, err = run_cli("audit", "--conf-dir", str(clean.root))
    assert code == 1 and "Traceback" not in out + err
    assert "region-missing" in out and "deny_countries" in out


def test_log_auth_failures_off_is_a_note_not_a_hole(clean, run_cli):
    """fs_guard.events bans on sofia::register_failure, fired whatever log-auth-failures says;
    the option only adds log lines (for replay of freeswitch.log and fail2ban's stock filter)."""
    clean.replace("sip_profiles/internal.xml", '"log-auth-failures" value="true"', '"log-auth-failures" value="false"')
    (finding,) = findings(clean)
    assert (finding.check, finding.severity, finding.file) == ("log-auth-failures-off", audit.INFO,
                                                               "sip_profiles/internal.xml")
    assert finding.line == clean.line_of("sip_profiles/internal.xml", "log-auth-failures")
    assert "fs-guard does not need it" in finding.message and "sofia::register_failure" in finding.message
    assert "fs-guard replay and fail2ban's stock freeswitch filter" in finding.message
    assert finding.fix.startswith("only if you want those lines: ") and "SIP auth challenge" in finding.fix
    code, out, _ = run_cli("audit", "--conf-dir", str(clean.root))
    assert code == 0 and "INFO      sip_profiles/internal.xml:" in out
    assert out.rstrip().endswith("1 finding(s): 1 info (notes only: no hole)")
    code, out, _ = run_cli("audit", "--json", "--conf-dir", str(clean.root))
    assert code == 0 and json.loads(out)["clean"] is True


def test_log_auth_failures_in_global_settings_is_no_default_for_the_profiles(clean):
    """mod_sofia reads log-auth-failures per profile only (sofia.c, config_sofia)."""
    clean.replace("sip_profiles/internal.xml", '    <param name="log-auth-failures" value="true"/>\n', "")
    clean.replace(
        "autoload_configs/sofia.conf.xml",
        "  <global_settings>\n",
        '  <global_settings>\n    <param name="log-auth-failures" value="true"/>\n',
    )
    (finding,) = findings(clean)
    assert (finding.check, finding.file) == ("log-auth-failures-off", "sip_profiles/internal.xml")
    line = clean.line_of("autoload_configs/sofia.conf.xml", "log-auth-failures")
    assert f"log-auth-failures in <global_settings> (autoload_configs/sofia.conf.xml:{line}) has no effect" in finding.message


def test_allow_empty_password_counts_where_mod_sofia_reads_it(clean):
    """A directory user's params, merged with its group's and domain's (sofia_reg.c, sofia_reg_parse_auth);
    a profile setting of that name is not read."""
    clean.replace(
        "sip_profiles/internal.xml", "  <settings>\n", '  <settings>\n    <param name="allow-empty-password" value="true"/>\n'
    )
    assert findings(clean) == []

    clean.replace(
        "directory/default.xml",
        '<group name="default">\n',
        '<group name="default">\n        <params>\n          <param name="allow-empty-password" value="yes"/>\n'
        "        </params>\n",
    )
    clean.replace(
        "directory/default/1001.xml", "    <params>\n", '    <params>\n      <param name="allow-empty-password" value="false"/>\n'
    )
    (finding,) = findings(clean)
    assert (finding.check, finding.file) == ("allow-empty-password", "directory/default.xml")
    assert finding.line == clean.line_of("directory/default.xml", "allow-empty-password")
    assert "directory user(s) 1000 " in finding.message  # 1001 sets it false for itself
    assert "mod_sofia's default" in finding.message and "whatever password it sends" in finding.message


def test_an_empty_password_is_no_hole_where_allow_empty_password_is_false(clean):
    """mod_sofia answers 403 to a user without a password when allow-empty-password is
    false (sofia_reg.c, sofia_reg_parse_auth): that user cannot get in at all."""
    clean.replace("directory/default/1001.xml", f"{fstree.STRONG}-1001", "")
    assert [(f.check, f.severity) for f in findings(clean)] == [("weak-password", "critical")]
    clean.replace(
        "directory/default/1001.xml", "    <params>\n", '    <params>\n      <param name="allow-empty-password" value="false"/>\n'
    )
    assert findings(clean) == []


def test_the_stock_configuration_has_its_known_holes(tmp_path, run_cli):
    tree = fstree.stock(tmp_path / "conf")
    code, out, _ = run_cli("audit", "--conf-dir", str(tree.root))
    assert code == 1
    checks = {f.check for f in findings(tree)}
    assert checks == {
        "screen-not-first", "python-not-loaded", "events-hook-missing", "default-password",
        "international-outbound", "open-profile", "log-auth-failures-off",
    }
    assert "CRITICAL  vars.xml:6  [default-password]" in out
    assert "2 user(s) use it: 1000, 1001" in out
    assert "fix: " in out


def test_json_output(tmp_path, clean, run_cli):
    tree = fstree.stock(tmp_path / "stock")
    code, out, _ = run_cli("audit", "--conf-dir", str(tree.root), "--json")
    report = json.loads(out)
    assert code == 1 and report["clean"] is False and report["conf_dir"] == str(tree.root)
    assert set(report["counts"]) == set(audit.SEVERITIES)
    assert sum(report["counts"].values()) == len(report["findings"])
    assert all(set(f) == {"check", "severity", "file", "line", "message", "fix"} for f in report["findings"])
    assert {"check": "default-password", "severity": "critical", "file": "vars.xml", "line": 6} in [
        {k: f[k] for k in ("check", "severity", "file", "line")} for f in report["findings"]
    ]
    severities = [audit.SEVERITIES.index(f["severity"]) for f in report["findings"]]
    assert severities == sorted(severities)  # the most severe first

    code, out, _ = run_cli("audit", "--conf-dir", str(clean.root), "--json")
    assert code == 0 and json.loads(out)["findings"] == [] and json.loads(out)["clean"] is True


@pytest.mark.parametrize("content", [None, "<document>\n<section>\n</document>\n"])
def test_not_a_freeswitch_configuration(tmp_path, run_cli, content):
    if content is not None:
        (tmp_path / "freeswitch.xml").write_text(content)
    code, out, err = run_cli("audit", "--conf-dir", str(tmp_path), "--json")
    assert code == 2 and "error" in json.loads(out)
    code, out, err = run_cli("audit", "--conf-dir", str(tmp_path))
    assert code == 2 and ("freeswitch.xml" in err)
