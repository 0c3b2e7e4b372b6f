"""`fs-guard check-config` and `fs-guard test`, run as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def fs_guard(*args, env=None):
    environment = {k: v for k, v in os.environ.items() if k != "FS_GUARD_CONFIG"}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "fs_guard", *args], capture_output=True, text=True,
                          env=environment, timeout=60)


@pytest.fixture
def config_file(tmp_path):
    def write(section, **extra):
        path = tmp_path / "fs_guard.json"
        path.write_text(json.dumps({"fail2ban": section, **extra}))
        return str(path)
    return write


class TestCheckConfig:
    def test_a_key_given_twice_exits_2_naming_its_path(self, tmp_path):
        path = tmp_path / "fs_guard.json"
        path.write_text('{"fail2ban": {"deny_prefix": ["00"], "deny_prefix": ["+"]}}')
        result = fs_guard("check-config", str(path))
        assert result.returncode == 2 and result.stdout == ""
        assert "  fail2ban.deny_prefix: given twice (JSON keeps only the last one: remove the other)" in result.stderr

    def test_a_good_file_exits_0_with_a_summary_of_the_rules(self, config_file):
        path = config_file({
            "filename": "/var/log/freeswitch/ban.log",
            "deny_prefix": ["00", "011", "+"],
            "trusted_networks": ["192.0.2.0/24"],
            "contexts": {"default": {"monitor": True}},
        }, cti={"port": 1})
        result = fs_guard("check-config", "--config", path)
        assert result.returncode == 0, result.stderr
        assert f"configuration: {path}: OK" in result.stdout
        assert "ban log:       /var/log/freeswitch/ban.log" in result.stdout
        assert "deny prefixes:     +, 00, 011 [3]" in result.stdout
        assert "trusted nets:  192.0.2.0/24" in result.stdout
        assert "rules for default:" in result.stdout and "MONITOR" in result.stdout

    def test_the_summary_lists_each_limit_with_what_it_counts_and_does(self, config_file):
        path = config_file({"limits": [
            {"name": "fanout", "by": "account", "contexts": ["default"], "prefixes": ["00"], "window": 3600,
             "distinct_numbers": {"warning": 10, "critical": 20}, "action": "reject", "block_for": 900},
            {"name": "up", "by": "source_ip", "concurrent": {"critical": 8}}]})
        result = fs_guard("check-config", path)
        assert result.returncode == 0, result.stderr
        assert ("limits:        2 (at most 100,000 keys tracked; a lost hang-up frees its slot after 14400 s)\n"
                "  fanout: by account in default to 00; distinct numbers in 3600 s: warning > 10, critical > 20; "
                "reject, block 900 s, ban lines off\n"
                "  up: by source_ip; concurrent calls: critical > 8; alert, ban lines on\n") in result.stdout
        assert "limits:        none" in fs_guard("check-config", config_file({})).stdout

    def test_a_ban_log_directory_that_does_not_exist_is_warned_about(self, config_file, tmp_path):
        result = fs_guard("check-config", config_file({"filename": str(tmp_path / "typo" / "ban.log")}))
        assert result.returncode == 0
        assert f"ban log:       {tmp_path / 'typo' / 'ban.log'}\n" in result.stdout
        assert result.stderr == (f"fs-guard: warning: the ban log's directory {tmp_path / 'typo'} does not exist: "
                                 "fs-guard cannot write ban lines there and fail2ban bans nobody (create it, fix "
                                 "filename, or give fs-guard install the right --log-dir)\n")
        assert fs_guard("check-config", config_file({"filename": str(tmp_path / "ban.log")})).stderr == ""

    def test_a_bad_file_exits_2_with_every_error_and_its_path(self, config_file):
        result = fs_guard("check-config", "--config", config_file({"denny_prefix": [], "deny_prefix": [5]}))
        assert result.returncode == 2
        assert "fail2ban.denny_prefix: unknown key" in result.stderr
        assert "fail2ban.deny_prefix[0]: 5 is not of type 'string'" in result.stderr
        assert "Traceback" not in result.stderr

    def test_a_missing_named_file_exits_2(self, tmp_path):
        result = fs_guard("check-config", "--config", str(tmp_path / "nope.json"))
        assert result.returncode == 2 and "cannot read" in result.stderr

    def test_without_a_file_the_path_looked_at_is_named(self):
        usual = "/etc/freeswitch/fs_guard.json"
        if os.path.exists(usual):
            pytest.skip(f"{usual} exists on this machine")
        result = fs_guard("check-config")
        assert result.returncode == 0 and f"configuration: built-in defaults: no file at {usual}: OK" in result.stdout

    def test_fs_guard_config_naming_no_file_exits_2(self, tmp_path):
        """A typo in the variable must not look like a wish for the built-in defaults."""
        absent = str(tmp_path / "typo.json")
        for command in (["check-config"], ["test", "1001"]):
            result = fs_guard(*command, env={"FS_GUARD_CONFIG": absent})
            assert (result.returncode, result.stdout) == (2, "")
            assert result.stderr == (f"fs-guard: configuration {absent} is not valid:\n"
                                     "  no such file (named by the environment variable FS_GUARD_CONFIG)\n")

    def test_the_file_may_be_named_without_config(self, config_file):
        path = config_file({})
        result = fs_guard("check-config", path)
        assert result.returncode == 0 and f"configuration: {path}: OK" in result.stdout

    def test_a_file_named_both_ways_is_a_usage_error(self, config_file):
        path = config_file({})
        for args in ((path, "--config", path), ("--config", path, path)):
            result = fs_guard("check-config", *args)
            assert result.returncode == 2 and result.stderr.startswith("usage: ")
            assert "not allowed with argument" in result.stderr

    def test_a_document_that_is_not_an_object_says_what_the_file_must_be(self, tmp_path):
        path = tmp_path / "fs_guard.json"
        path.write_text("[]")
        result = fs_guard("check-config", str(path))
        assert result.returncode == 2 and result.stderr == (
            f"fs-guard: configuration {path} is not valid:\n"
            "  (document): [] is not of type 'object' (the file must be a JSON object with a \"fail2ban\" object in it)\n")

    def test_fs_guard_config_is_used_without_config(self, config_file):
        path = config_file({"destination_number_max_len": 7})
        result = fs_guard("check-config", env={"FS_GUARD_CONFIG": path})
        assert result.returncode == 0 and "max length:        7" in result.stdout


class TestTestCommand:
    def test_a_rejected_number_prints_reject_and_the_reason_and_exits_1(self, config_file):
        result = fs_guard("test", "0044123", "--config", config_file({}))
        assert result.returncode == 1
        assert result.stdout.startswith('REJECT "0044123" context=public reason=deny_prefix')

    def test_an_accepted_number_prints_accept_and_exits_0(self, config_file):
        result = fs_guard("test", "1001", "--context", "default", "--config", config_file({}))
        assert (result.returncode, result.stdout.splitlines()[0]) == (0, 'ACCEPT "1001" context=default')

    def test_the_context_picks_its_rules(self, config_file):
        path = config_file({"contexts": {"default": {"deny_prefix": ["9"]}}})
        assert fs_guard("test", "9001", "--context", "default", "--config", path).returncode == 1
        assert fs_guard("test", "9001", "--context", "public", "--config", path).returncode == 0

    def test_the_user_agent_is_screened(self, config_file):
        result = fs_guard("test", "1001", "--user-agent", "friendly-scanner",
                          "--config", config_file({"deny_user_agent": ["Friendly-Scanner"]}))
        assert result.returncode == 1 and "reason=scanner_user_agent" in result.stdout

    def test_the_ip_tells_whether_a_ban_line_would_be_written(self, config_file, tmp_path):
        path = config_file({"filename": str(tmp_path / "ban.log"), "trusted_networks": ["192.0.2.0/24"],
                            "contexts": {"lab": {"monitor": True}, "quiet": {"ban": False}}})

        def ban_line(ip, context="public"):
            lines = fs_guard("test", "00", "--ip", ip, "--context", context, "--config", path).stdout.splitlines()
            return [line for line in lines if line.startswith("ban line: ")]

        assert ban_line("203.0.113.7") == [f"ban line: would be written: ip[203.0.113.7] to {tmp_path / 'ban.log'}"]
        assert ban_line("192.0.2.9") == ["ban line: would not be written (192.0.2.9 is in a trusted network)"]
        assert ban_line("nope") == ['ban line: would not be written ("nope" is not a valid IP address)']
        assert ban_line("203.0.113.7", "lab") == ["ban line: would not be written (monitor mode writes none)"]
        assert ban_line("203.0.113.7", "quiet") == ['ban line: would not be written ("ban": false for these rules)']

    def test_a_ban_log_in_a_directory_that_does_not_exist_would_not_be_written(self, config_file, tmp_path):
        path = config_file({"filename": str(tmp_path / "typo" / "ban.log")})
        result = fs_guard("test", "00", "--ip", "203.0.113.7", "--config", path)
        assert result.returncode == 1
        assert (f"ban line: would not be written (no directory {tmp_path / 'typo'} for {tmp_path / 'typo' / 'ban.log'})"
                in result.stdout.splitlines())

    def test_the_configuration_decided_with_is_named_with_its_rule_set(self, config_file):
        path = config_file({"contexts": {"default": {"deny_prefix": ["9"]}}})
        assert f"configuration: {path} (the rules in contexts.default)\n" in fs_guard(
            "test", "9001", "--context", "default", "--config", path).stdout
        assert f"configuration: {path} (the top-level rules)\n" in fs_guard(
            "test", "1001", "--context", "default", "--config", config_file({})).stdout

    def test_without_a_file_the_built_in_defaults_decide_and_the_path_looked_at_is_named(self):
        usual = "/etc/freeswitch/fs_guard.json"
        if os.path.exists(usual):
            pytest.skip(f"{usual} exists on this machine")
        result = fs_guard("test", "+4412345")
        assert result.returncode == 1 and "reason=deny_prefix" in result.stdout
        assert f"configuration: built-in defaults: no file at {usual} (the top-level rules)" in result.stdout
        assert result.stderr == ""  # no contexts at all: the top-level rules apply everywhere, by design

    def test_a_context_neither_screened_nor_in_contexts_is_warned_about_and_still_decided(self, config_file):
        """Without a FreeSWITCH configuration beside the file, the screened ones are install's."""
        if os.path.exists("/etc/freeswitch/freeswitch.xml"):
            pytest.skip("this machine has a FreeSWITCH configuration in /etc/freeswitch")
        path = config_file({"contexts": {"public": {"deny_prefix": ["9"]}}})
        for config in (path, config_file({})):
            result = fs_guard("test", "9001", "--context", "pubilc", "--config", config)
            assert result.stderr == (
                "fs-guard: warning: 'pubilc' is neither a context the screen runs in (public, default: what "
                f"fs-guard install screens; no FreeSWITCH configuration in /etc/freeswitch) nor an entry of contexts, "
                "so no live call is decided like this (a typo?); the top-level rules decided\n")
            assert result.returncode == 0 and result.stdout.startswith('ACCEPT "9001" context=pubilc')

    @pytest.mark.parametrize("contexts", [{}, {"public": {}}, {"default": {}}])
    def test_a_screened_context_without_an_entry_is_no_warning(self, config_file, contexts):
        """Its calls are decided with the top-level rules, by design."""
        path = config_file({"contexts": contexts})
        for context in ("public", "default"):
            assert fs_guard("test", "1001", "--context", context, "--config", path).stderr == ""

    def test_the_shipped_configuration_warns_of_no_context_install_screens(self):
        from fs_guard.fsconf import bundle

        shipped = bundle.path(bundle.FREESWITCH, "fs_guard.json")
        for context in ("public", "default"):
            assert fs_guard("test", "1001", "--context", context, "--config", shipped).stderr == ""

    def test_a_bad_config_exits_2(self, config_file):
        assert fs_guard("test", "1001", "--config", config_file({"max": 1})).returncode == 2

    def test_a_usage_error_exits_2(self):
        result = fs_guard("test")
        assert result.returncode == 2 and "usage:" in result.stderr

    def test_hostile_numbers_are_printed_escaped(self, config_file):
        result = fs_guard("test", "00\nip[1.2.3.4]\x1b", "--config", config_file({"destination_number_max_len": 64}))
        assert result.stdout.splitlines()[0] == 'REJECT "00\\nip\\x5b1.2.3.4\\x5d\\x1b" context=public reason=deny_prefix'
