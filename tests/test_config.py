"""Configuration: where it is found, what is valid, how it reloads."""

from __future__ import annotations

import json
import os
import threading
import time

import freeswitch
import fsctl
import pytest

from fs_guard.runtime import config as cfg
from fs_guard.runtime import state, status_report
from fs_guard.runtime.config import ConfigError, ConfigStore, parse_config


def errors_of(section=None, text=None):
    with pytest.raises(ConfigError) as caught:
        parse_config(text if text is not None else json.dumps({"fail2ban": section}), "test.json")
    return caught.value.errors


class TestValidation:
    def test_a_mod_cti_cti_json_with_other_sections_is_accepted(self):
        text = json.dumps({
            "cti": {"host": "127.0.0.1", "port": 8021, "anything": [1, 2]},
            "redis": {"url": "redis://localhost"},
            "fail2ban": {
                "filename": "/var/log/freeswitch/fail2ban.log",
                "destination_number_max_len": 14,
                "deny_prefix": ["00", "+"],
                "allow_prefix": [],
            },
        })
        config = parse_config(text, "cti.json")
        assert config.base.max_len == 14
        assert config.ban_log_path == "/var/log/freeswitch/fail2ban.log"

    def test_an_unknown_key_is_an_error_naming_it(self):
        assert errors_of({"denny_prefix": ["00"]}) == ("fail2ban.denny_prefix: unknown key",)

    def test_an_unknown_key_inside_a_context_names_its_path(self):
        assert errors_of({"contexts": {"public": {"filename": "x"}}}) == (
            "fail2ban.contexts.public.filename: unknown key",
        )

    def test_every_error_names_the_field_path_and_what_is_wrong(self):
        errors = errors_of({
            "destination_number_max_len": "12",
            "deny_prefix": ["00", 7, ""],
            "monitor": "yes",
            "on_error": "ignore",
        })
        assert "fail2ban.destination_number_max_len: '12' is not of type 'integer'" in errors
        assert "fail2ban.deny_prefix[1]: 7 is not of type 'string'" in errors
        assert any(e.startswith("fail2ban.deny_prefix[2]: ''") for e in errors)
        assert "fail2ban.monitor: 'yes' is not of type 'boolean'" in errors
        assert any(e.startswith("fail2ban.on_error: 'ignore' is not one of") for e in errors)
        assert len(errors) == 5

    def test_a_key_given_twice_is_an_error_naming_its_path(self):
        """json.loads keeps the last one: deny_prefix ["00"] would be dropped without a word."""
        assert errors_of(text='{"fail2ban": {"deny_prefix": ["00"], "deny_prefix": ["+"]}}') == (
            "fail2ban.deny_prefix: given twice (JSON keeps only the last one: remove the other)",)
        errors = errors_of(text='{"fail2ban": {"limits": [{}, {"name": "a", "name": "b"}], '
                                '"contexts": {"public": {"monitor": true, "monitor": false}}}}')
        assert errors[:2] == (  # then the schema's errors about the limits
            "fail2ban.limits[1].name: given twice (JSON keeps only the last one: remove the other)",
            "fail2ban.contexts.public.monitor: given twice (JSON keeps only the last one: remove the other)",
        )

    def test_the_fail2ban_object_given_twice_is_an_error(self):
        assert errors_of(text='{"fail2ban": {"deny_prefix": ["00"]}, "fail2ban": {}}') == (
            "fail2ban: given twice (JSON keeps only the last one: remove the other)",)

    def test_keys_given_twice_in_other_sections_are_not_fs_guards_business(self):
        """mod_cti reads cti.json as it is: fs-guard judges only its own section."""
        config = parse_config('{"cti": {"port": 1, "port": 2}, "fail2ban": {"deny_prefix": ["9"]}}', "cti.json")
        assert config.base.deny.prefixes == {"9"}

    def test_a_file_without_a_fail2ban_object_is_an_error(self):
        assert errors_of(text='{"cti": {}}') == ('fail2ban: missing (the file needs a top-level "fail2ban" object)',)

    @pytest.mark.parametrize("text", ["", "{", '{"fail2ban": {}} trailing', "[1, 2]"])
    def test_text_that_is_not_a_json_object_is_an_error(self, text):
        assert errors_of(text=text)

    def test_non_utf8_bytes_are_an_error(self):
        assert "not UTF-8" in errors_of(text=b'{"fail2ban": {"filename": "\xff"}}')[0]

    def test_a_bad_trusted_network_names_its_index(self):
        assert errors_of({"trusted_networks": ["10.0.0.0/8", "10.0.0/33"]}) == (
            "fail2ban.trusted_networks[1]: '10.0.0/33' is not an IPv4 or IPv6 network (CIDR)",
        )

    def test_the_shipped_schema_is_valid_json_schema(self):
        import jsonschema

        with open(cfg.SCHEMA_PATH) as handle:
            jsonschema.Draft7Validator.check_schema(json.load(handle))


class TestCompiledConfig:
    def test_a_context_override_replaces_only_the_keys_it_names(self):
        config = parse_config(json.dumps({"fail2ban": {
            "destination_number_max_len": 10,
            "deny_prefix": ["00"],
            "deny_user_agent": ["scanner"],
            "contexts": {"default": {"deny_prefix": ["900"], "monitor": True}},
        }}), "x")
        default = config.rules_for("default")
        assert default.deny.prefixes == {"900"}
        assert default.max_len == 10
        assert default.deny_user_agents == ("scanner",)
        assert default.monitor is True
        assert config.rules_for("public") is config.base
        assert config.base.monitor is False

    def test_a_relative_filename_is_relative_to_freeswitch_log_dir(self, fs_dirs):
        _, logs = fs_dirs
        config = parse_config('{"fail2ban": {"filename": "ban.log"}}', "x")
        assert config.ban_log_path == os.path.join(str(logs), "ban.log")

    def test_the_default_ban_log_is_in_log_dir(self, fs_dirs):
        _, logs = fs_dirs
        assert cfg.default_config().ban_log_path == os.path.join(str(logs), "fs-guard-ban.log")


class TestLocation:
    def test_fs_guard_config_environment_variable_comes_first(self, monkeypatch, tmp_path):
        monkeypatch.setenv("FS_GUARD_CONFIG", str(tmp_path / "env.json"))
        freeswitch.setGlobalVariable("fs_guard_config", str(tmp_path / "global.json"))
        assert cfg.locate_config() == cfg.Location(str(tmp_path / "env.json"), "the environment variable FS_GUARD_CONFIG")

    def test_then_the_freeswitch_global_variable(self, tmp_path):
        freeswitch.setGlobalVariable("fs_guard_config", str(tmp_path / "global.json"))
        assert cfg.locate_config() == cfg.Location(str(tmp_path / "global.json"),
                                                   "the FreeSWITCH global variable fs_guard_config")

    def test_then_fs_guard_json_in_conf_dir(self, fs_dirs):
        conf, _ = fs_dirs
        assert cfg.locate_config() == cfg.Location(str(conf / "fs_guard.json"), None)

    def test_only_the_usual_file_missing_means_the_built_in_defaults(self, fs_dirs, tmp_path):
        conf, _ = fs_dirs
        assert cfg.Location(str(conf / "fs_guard.json"), None).missing() is None
        assert cfg.Location(str(tmp_path / "typo.json"), "FS_GUARD_CONFIG").missing() == (
            "no such file (named by FS_GUARD_CONFIG)")


class TestHotReload:
    def test_with_no_file_the_built_in_defaults_apply(self):
        store = ConfigStore()
        assert store.current().source is None
        assert store.current().base.max_len == 12
        assert store.state.last_error is None

    @pytest.mark.parametrize("named_by", ["environment", "global"])
    def test_a_named_file_that_does_not_exist_is_an_error_and_the_defaults_stay(self, tmp_path, monkeypatch,
                                                                                 named_by):
        import fsctl

        typo = str(tmp_path / "typo.json")
        if named_by == "environment":
            monkeypatch.setenv("FS_GUARD_CONFIG", typo)
        else:
            freeswitch.setGlobalVariable("fs_guard_config", typo)
        store = ConfigStore()
        for _ in range(3):
            assert store.current().source is None and store.current().base.deny.prefixes == {"00", "+"}
        assert store.state.last_error.startswith(f"{typo}: no such file (named by the ")
        assert store.state.last_error.endswith("; keeping the built-in configuration")
        assert len(fsctl.log_lines("err")) == 1

    def test_a_named_file_that_does_not_exist_is_reported_when_freeswitch_starts(self, tmp_path, monkeypatch):
        """preload (the event hook, at start) reports it; an absent <conf_dir>/fs_guard.json waits for a call."""
        store = ConfigStore()
        store.preload()
        assert store.state.last_error is None
        monkeypatch.setenv("FS_GUARD_CONFIG", str(tmp_path / "typo.json"))
        store = ConfigStore()
        assert store.preload().source is None
        assert store.state.last_error.startswith(f"{tmp_path / 'typo.json'}: no such file")

    def test_a_changed_file_takes_effect_on_the_next_call(self, write_config):
        store = ConfigStore()
        path = write_config({"destination_number_max_len": 8})
        assert store.current().base.max_len == 8
        write_config({"destination_number_max_len": 9})
        os.utime(path, ns=(1, 1))  # a different mtime even within the clock's granularity
        assert store.current().base.max_len == 9

    def test_an_unchanged_file_is_not_parsed_again(self, write_config, mocker):
        write_config({"destination_number_max_len": 8})
        store = ConfigStore()
        load = mocker.spy(cfg, "load_config")
        for _ in range(100):
            store.current()
        assert load.call_count == 1

    def test_a_bad_file_keeps_the_last_good_config_and_records_the_error(self, write_config):
        import fsctl

        store = ConfigStore()
        write_config({"destination_number_max_len": 8})
        assert store.current().base.max_len == 8
        write_config({"destination_number_max_len": "nine", "x": 1})
        assert store.current().base.max_len == 8
        error = store.state.last_error
        assert "fail2ban.destination_number_max_len" in error and "fail2ban.x: unknown key" in error
        assert "keeping the last good configuration" in error
        assert any("configuration error" in line for line in fsctl.log_lines("err"))

    def test_a_key_given_twice_never_takes_effect(self, write_config):
        store = ConfigStore()
        path = write_config({"deny_prefix": ["7"]})
        assert store.current().base.deny.prefixes == {"7"}
        write_config(text='{"fail2ban": {"deny_prefix": ["00"], "deny_prefix": ["+"]}}')
        os.utime(path, ns=(3, 3))
        assert store.current().base.deny.prefixes == {"7"}
        assert "fail2ban.deny_prefix: given twice" in store.state.last_error

    def test_a_bad_file_is_parsed_and_logged_once_not_on_every_call(self, write_config, mocker):
        import fsctl

        write_config(text="{broken")
        store = ConfigStore()
        load = mocker.spy(cfg, "load_config")
        for _ in range(50):
            assert store.current().source is None
        assert load.call_count == 1
        assert len(fsctl.log_lines("err")) == 1

    def test_a_deleted_file_keeps_the_last_good_config(self, write_config):
        store = ConfigStore()
        path = write_config({"deny_prefix": ["7"]})
        assert store.current().base.deny.prefixes == {"7"}
        path.unlink()
        assert store.current().base.deny.prefixes == {"7"}
        assert "missing" in store.state.last_error

    def test_with_no_good_file_ever_loaded_a_bad_file_leaves_the_built_in_defaults(self, write_config):
        write_config(text="not json")
        store = ConfigStore()
        config = store.current()
        assert config.source is None and config.base.deny.prefixes == {"00", "+"}
        assert "keeping the built-in configuration" in store.state.last_error

    def test_a_good_file_after_a_bad_one_clears_the_error(self, write_config):
        store = ConfigStore()
        path = write_config(text="{")
        store.current()
        write_config({"destination_number_max_len": 5})
        os.utime(path, ns=(2, 2))
        assert store.current().base.max_len == 5
        assert store.state.last_error is None and store.state.loaded_at is not None

    def test_reload_reads_the_file_even_when_it_looks_unchanged(self, write_config, mocker):
        write_config({"destination_number_max_len": 8})
        store = ConfigStore()
        store.current()
        load = mocker.spy(cfg, "load_config")
        store.reload()
        assert load.call_count == 1


def test_an_unexpected_loader_failure_keeps_the_last_good_config(write_config, mocker):
    store = ConfigStore()
    path = write_config({"destination_number_max_len": 8})
    assert store.current().base.max_len == 8
    write_config({"destination_number_max_len": 9})
    os.utime(path, ns=(3, 3))
    mocker.patch.object(cfg, "load_config", side_effect=RecursionError("maximum recursion depth exceeded"))
    assert store.current().base.max_len == 8
    assert "cannot load (RecursionError: maximum recursion depth exceeded)" in store.state.last_error


class TestFirstLoad:
    """Right after FreeSWITCH starts, calls arrive while the first load (jsonschema import,
    validation) is still running: they wait for it instead of using the built-in defaults."""

    @staticmethod
    def slow_loader(monkeypatch, seconds):
        real = cfg.load_config

        def load(path):
            time.sleep(seconds)
            return real(path)

        monkeypatch.setattr(cfg, "load_config", load)

    def place_calls_at_once(self, call, threads=24):
        barrier = threading.Barrier(threads)
        sessions = [None] * threads

        def place(i):
            barrier.wait()
            sessions[i] = call(f"2{i:02d}", ip=f"192.0.2.{i + 1}")

        workers = [threading.Thread(target=place, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return sessions

    def test_calls_during_the_first_load_wait_for_it_and_use_the_file(self, monkeypatch, write_config, fs_dirs, call):
        _, logs = fs_dirs
        write_config({"filename": "configured.log", "deny_prefix": [], "allow_prefix": ["1"]})
        self.slow_loader(monkeypatch, 0.3)
        sessions = self.place_calls_at_once(call)
        assert [s.hangupCause() for s in sessions] == ["CALL_REJECTED"] * 24
        lines = (logs / "configured.log").read_text().splitlines()
        assert len(lines) == 24 and all("reason=not_allowed_prefix" in line for line in lines)
        assert not (logs / "fs-guard-ban.log").exists()  # the built-in default name: no call used it
        assert state.CONFIG.first_load_timeouts == 0

    def test_a_first_load_slower_than_the_limit_decides_with_the_defaults_and_counts_it(
            self, monkeypatch, write_config, fs_dirs, call):
        _, logs = fs_dirs
        write_config({"filename": "configured.log", "deny_prefix": [], "allow_prefix": ["1"]})
        monkeypatch.setattr(cfg, "FIRST_LOAD_WAIT", 0.05)
        self.slow_loader(monkeypatch, 0.5)
        sessions = self.place_calls_at_once(call, threads=4)
        waited = state.CONFIG.first_load_timeouts
        assert waited >= 1  # the three that did not run the load gave up waiting
        assert sum(s.hangupCause() == "NONE" for s in sessions) >= waited  # "2NN": the defaults accept it
        assert call("2099").hangupCause() == "CALL_REJECTED"  # once loaded, the file's rules apply
        assert "config_wait_timeouts" in status_report.report()["counters"]
        assert any("decided with the built-in defaults" in line for line in fsctl.log_lines("warning"))

    def test_a_reload_does_not_hold_calls_they_keep_the_last_good_configuration(
            self, monkeypatch, write_config, call):
        path = write_config({"deny_prefix": ["9"]})
        assert call("9123").hangupCause() == "CALL_REJECTED"
        self.slow_loader(monkeypatch, 0.5)
        path.write_text(json.dumps({"fail2ban": {"deny_prefix": ["8"]}}))
        loader = threading.Thread(target=state.CONFIG.current)
        loader.start()
        time.sleep(0.05)
        started = time.monotonic()
        assert call("9123").hangupCause() == "CALL_REJECTED"  # the last good rules, at once
        assert time.monotonic() - started < 0.4
        loader.join()
        assert call("8123").hangupCause() == "CALL_REJECTED"


class TestTheWholeDocument:
    def test_a_document_that_is_not_an_object_is_named_as_the_document_with_what_to_do(self):
        assert errors_of(text="[]") == (
            "(document): [] is not of type 'object' "
            '(the file must be a JSON object with a "fail2ban" object in it)',
        )

    def test_a_fail2ban_that_is_not_an_object_is_named_by_its_path(self):
        assert errors_of(text='{"fail2ban": []}') == ("fail2ban: [] is not of type 'object'",)
