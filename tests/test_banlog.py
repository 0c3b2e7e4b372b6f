"""The ban log contract: format, escaping, whole lines, rotation, unwritable files."""

from __future__ import annotations

import calendar
import os
import re
import threading
import time

import fsctl
import pytest

from fs_guard.runtime import banlog
from fs_guard.runtime.banlog import BanLog, escape, line
from fs_guard.runtime.offence import call_fields, registration_fields

LINE = re.compile(
    r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 ip\[[0-9a-f.:]+\] reason=[a-z_]+( [a-z]+=("([^"\\]|\\.)*"|[A-Za-z0-9_.:@+-]+))*$'
)


def test_a_line_has_the_contract_format():
    now = calendar.timegm((2026, 11, 25, 10, 0, 0)) + 0.1234
    assert line("203.0.113.7", "deny_prefix", call_fields("public", "0044123456", "friendly-scanner"), now=now) == ('2026-11-25T10:00:00.123+00:00 ip[203.0.113.7] reason=deny_prefix '
                    'context=public dest="0044123456" ua="friendly-scanner"')


def test_timestamps_carry_milliseconds_and_the_utc_offset():
    assert line("192.0.2.1", "too_long", "", now=0.0017).startswith("1970-01-01T00:00:00.001+00:00 ")
    assert line("192.0.2.1", "too_long", "", now=59.999).startswith("1970-01-01T00:00:59.999+00:00 ")


@pytest.mark.parametrize("raw, escaped", [
    ("plain 123", "plain 123"),
    ('a"b', 'a\\"b'),
    ("a\\b", "a\\\\b"),
    ("a\nb\rc\td", "a\\nb\\rc\\td"),
    ("\x00\x1b\x7f", "\\x00\\x1b\\x7f"),
    ("ip[1.2.3.4]", "ip\\x5b1.2.3.4\\x5d"),
    ("é€😀", "\\xe9\\u20ac\\U0001f600"),
    ("\u2028\u202e", "\\u2028\\u202e"),
    ("\udcff", "\\udcff"),
])
def test_escaping_leaves_only_printable_ascii_without_syntax(raw, escaped):
    assert escape(raw) == escaped


def test_a_long_value_is_cut_and_marked():
    assert escape("9" * 300) == "9" * banlog.MAX_FIELD + "..."


def test_a_missing_value_is_an_empty_quoted_string():
    assert call_fields("public", None, "") == 'context=public dest="" ua=""'


def test_a_context_that_is_not_a_plain_name_is_quoted():
    assert call_fields("a b]", "1", None).startswith('context="a b\\x5d" ')


def test_registration_lines_carry_the_profile_and_the_network_values_quoted():
    assert registration_fields("internal", "1000", "pbx.example.com", "sipcli", "REGISTER") == (
        'profile=internal user="1000" host="pbx.example.com" ua="sipcli" type="REGISTER"')
    assert registration_fields("external", None, None, "friendly-scanner") == (
        'profile=external user="" host="" ua="friendly-scanner"')


@pytest.mark.parametrize("hostile", [
    "0" * 65536,
    "00\n2026-11-25T10:00:00.000+00:00 ip[198.51.100.9] reason=deny_prefix",
    'x" ip[198.51.100.9] reason=deny_prefix "',
    "\\\" ip[198.51.100.9]",
    "ñandú \x00\x07 \u200b",
])
def test_hostile_values_give_one_whole_line_with_one_ip_field(hostile):
    text = line("203.0.113.7", "deny_prefix", call_fields("public", hostile, hostile))
    assert "\n" not in text and "\r" not in text
    assert text.isascii() and text.isprintable()
    assert text.count("ip[") == 1
    assert LINE.match(text), text


class TestWriter:
    def test_appends_one_line_per_write(self, tmp_path):
        path = str(tmp_path / "ban.log")
        writer = BanLog()
        assert writer.write(path, "one") and writer.write(path, "two")
        assert open(path).read() == "one\ntwo\n"

    def test_follows_rename_and_create_rotation(self, tmp_path):
        path = tmp_path / "ban.log"
        writer = BanLog()
        writer.write(str(path), "before")
        path.rename(tmp_path / "ban.log.1")
        path.write_text("")  # logrotate's create
        writer.write(str(path), "after")
        assert (tmp_path / "ban.log.1").read_text() == "before\n"
        assert path.read_text() == "after\n"

    def test_recreates_a_file_that_was_moved_away(self, tmp_path):
        path = tmp_path / "ban.log"
        writer = BanLog()
        writer.write(str(path), "before")
        path.rename(tmp_path / "ban.log.1")
        writer.write(str(path), "after")
        assert path.read_text() == "after\n"

    def test_follows_copytruncate_rotation_without_holes(self, tmp_path):
        path = tmp_path / "ban.log"
        writer = BanLog()
        writer.write(str(path), "before")
        (tmp_path / "ban.log.1").write_bytes(path.read_bytes())
        with open(path, "r+") as handle:
            handle.truncate(0)
        writer.write(str(path), "after")
        assert path.read_bytes() == b"after\n"

    def test_16_threads_never_interleave_lines(self, tmp_path):
        path = str(tmp_path / "ban.log")
        writer = BanLog()
        lines_each = 500

        def work(n):
            for i in range(lines_each):
                writer.write(path, f"thread={n:02d} line={i:04d} " + "x" * (n * 37 % 300))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        lines = open(path).read().splitlines()
        assert len(lines) == 16 * lines_each
        expected = {f"thread={n:02d} line={i:04d} " + "x" * (n * 37 % 300) for n in range(16) for i in range(lines_each)}
        assert set(lines) == expected


    def test_no_line_is_lost_or_torn_while_threads_write_through_rotations(self, tmp_path):
        path = tmp_path / "ban.log"
        writer = BanLog()

        def work(n):
            for i in range(2000):
                writer.write(str(path), f"thread={n} line={i:04d}")

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        rotations = 0
        while any(thread.is_alive() for thread in threads):
            if path.exists():
                rotations += 1
                path.rename(tmp_path / f"ban.log.{rotations}")
                path.touch()  # logrotate's create
            time.sleep(0.002)
        for thread in threads:
            thread.join()
        lines = [line for f in tmp_path.glob("ban.log*") for line in f.read_text().splitlines()]
        assert rotations > 1
        assert sorted(lines) == sorted(f"thread={n} line={i:04d}" for n in range(8) for i in range(2000))


class TestUnwritable:
    def test_a_missing_directory_fails_softly_and_logs_once_a_second(self, tmp_path):
        writer = BanLog()
        path = str(tmp_path / "missing" / "ban.log")
        results = [writer.write(path, "x") for _ in range(100)]
        assert results == [False] * 100
        errors = fsctl.log_lines("err")
        assert len(errors) == 1
        assert "cannot write ban log" in errors[0] and "No such file or directory" in errors[0]
        assert writer.last_error.endswith("No such file or directory")

    def test_a_full_disk_fails_softly(self):
        if not os.path.exists("/dev/full"):
            pytest.skip("no /dev/full on this system")
        writer = BanLog()
        assert writer.write("/dev/full", "x") is False
        assert "No space left on device" in fsctl.log_lines("err")[0]

    def test_after_the_error_clears_lines_are_written_again(self, tmp_path):
        writer = BanLog()
        path = tmp_path / "later" / "ban.log"
        assert writer.write(str(path), "lost") is False
        path.parent.mkdir()
        assert writer.write(str(path), "kept") is True
        assert path.read_text() == "kept\n"

    def test_no_permission_fails_softly(self, tmp_path):
        """Writes as an unprivileged user in a child process when run as root (root ignores modes)."""
        target = tmp_path / "read-only"
        target.mkdir()
        target.chmod(0o555)
        path = str(target / "ban.log")
        if os.geteuid() != 0:
            writer = BanLog()
            assert writer.write(path, "x") is False
            assert writer.last_error.endswith("Permission denied")
            return
        reader, writer_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: drop privileges, try, report through the pipe
            try:
                os.setgid(65534)
                os.setuid(65534)
                writer = BanLog()
                ok = writer.write(path, "x")
                os.write(writer_end, f"{ok}|{writer.last_error}".encode())
            finally:
                os._exit(0)
        os.close(writer_end)
        os.waitpid(pid, 0)
        answer = os.read(reader, 4096).decode()
        os.close(reader)
        assert answer == f"False|{path}: Permission denied"
        assert not os.path.exists(path)
