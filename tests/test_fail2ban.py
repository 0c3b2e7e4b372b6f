"""fail2ban integration, proven against the real fail2ban (issue 4).

- the shipped filter, run by the real ``fail2ban-regex`` over the annotated sample log
  (fail2ban/tests/fs-guard.log) and over lines written by fs-guard itself;
- the shipped jail, resolved by the real ``fail2ban-client`` against Debian's stock
  configuration (all-ports ban action, limits, ignoreip);
- a private ``fail2ban-server`` with the shipped filter and jail, fed by the REAL
  ``fs_guard.screen`` handler: five offences within findtime ban, four do not; unban;
  rotation by rename+create and by copytruncate is followed.

Tests marked ``fail2ban`` skip without fail2ban unless FS_GUARD_REQUIRE_FAIL2BAN is set,
and then fail (tests/fail2ban_support.py).
"""

from __future__ import annotations

import calendar
import configparser
import ipaddress
import os
import random
import shutil
import tempfile
import time
from datetime import datetime, timezone

import pytest

import fail2ban_support as f2b
from fs_guard.runtime import banlog, config as fsconfig, host, offence
from fs_guard.runtime.rules import INTERNAL_ERROR, REASONS

FIRST = "203.0.113.7"  # offends five times: banned
SECOND = "198.51.100.9"  # offends four times: not banned
DENIED = "0044123456"  # rejected by the built-in defaults (deny prefix "00")
BAN_REASONS = tuple(r for r in REASONS if r != INTERNAL_ERROR)


@pytest.fixture
def tools():
    return f2b.need_fail2ban()


@pytest.fixture
def server(tools, tmp_path, ban_log):
    """A private fail2ban-server watching this test's ban log (FreeSWITCH's log_dir)."""
    ban_log.path.touch()  # what the README's install step does: fail2ban 1.0.2 needs the file
    instance = f2b.Fail2banServer(tmp_path / "f2b", ban_log.path, tools)
    try:
        yield instance.start()
    finally:
        instance.stop()


def offend(call, ip, times, number=DENIED, **kwargs):
    for _ in range(times):
        session = call(number, ip=ip, **kwargs)
        assert session.hangupCause() == "CALL_REJECTED"


def utc(text: str) -> float:
    """A failJSON time (UTC, no offset) as seconds since the epoch."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


# --- the shipped files, read as text (no fail2ban needed) -------------------------------


def test_filter_reasons_are_exactly_the_ban_line_tokens():
    reasons = f2b.shipped_option(f2b.FILTER, "Definition", "_reasons")
    assert reasons.startswith("(?:") and reasons.endswith(")")
    assert sorted(reasons[3:-1].split("|")) == sorted(BAN_REASONS)


def test_jail_limits_logpath_and_ignoreip():
    option = lambda name: f2b.shipped_option(f2b.JAIL, "fs-guard", name)  # noqa: E731
    assert option("enabled") == "true"
    assert option("filter") == "fs-guard"
    assert (option("bantime"), option("maxretry"), option("findtime")) == ("86400", "5", "180")
    assert option("logpath") == os.path.join(host.DEFAULT_LOG_DIR, fsconfig.DEFAULT_FILENAME)
    ignored = [ipaddress.ip_network(n) for n in option("ignoreip").split()]
    for private in ("127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.50",
                    "fd00::1", "fe80::1"):
        assert any(ipaddress.ip_address(private) in net for net in ignored), private
    for public in (FIRST, SECOND, "2001:db8::7", "100.64.0.1", "172.32.0.1"):
        assert not any(ipaddress.ip_address(public) in net for net in ignored), public
    assert option("banaction") == "%(banaction_allports)s"
    assert set(option("protocol").split(",")) == {"tcp", "udp"}


def test_logrotate_snippet_rotates_the_jails_log_by_rename_and_create():
    text = f2b.LOGROTATE.read_text()
    directives = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert directives[0] == f2b.shipped_option(f2b.JAIL, "fs-guard", "logpath") + " {"
    assert directives[-1] == "}"
    body = [d.split()[0] for d in directives[1:-1]]
    assert "create" in body and "copytruncate" not in body
    assert "missingok" in body and "postrotate" not in body


def test_the_sample_log_annotates_every_line_and_covers_every_reason_and_both_families():
    annotated = f2b.read_annotated(f2b.SAMPLE_LOG)
    matching = [a for a in annotated if a.expect.get("match")]
    assert {reason for a in matching for reason in BAN_REASONS if f" reason={reason}" in a.line} == set(BAN_REASONS)
    families = {ipaddress.ip_address(a.expect["host"]).version for a in matching}
    assert families == {4, 6}
    assert len({a.line for a in annotated}) == len(annotated), "sample lines must be unique"
    assert sum(1 for a in annotated if not a.expect.get("match", True)) >= 20


# --- the real fail2ban-regex -------------------------------------------------------------


@pytest.mark.fail2ban
def test_fail2ban_regex_finds_exactly_what_the_sample_log_annotates(tools):
    annotated = f2b.read_annotated(f2b.SAMPLE_LOG)
    matches = f2b.regex_matches(tools["fail2ban-regex"], f2b.SAMPLE_LOG)
    by_line = {}
    for m in matches:
        by_line.setdefault(m.line, []).append(m)
    known = {a.line for a in annotated}
    assert [m.line for m in matches if m.line not in known] == [], "a match that is no line of the sample"
    for a in annotated:
        found = by_line.get(a.line, [])
        where = f"{f2b.SAMPLE_LOG.name}:{a.lineno} ({a.expect.get('desc', '')}): {a.line}"
        if a.expect.get("match"):
            assert len(found) == 1, f"expected one match, got {len(found)}: {where}"
            assert ipaddress.ip_address(found[0].ip) == ipaddress.ip_address(a.expect["host"]), where
            expected = utc(a.expect["time"])
            # fail2ban 1.0.2 counts whole seconds; a later one may keep the milliseconds
            assert found[0].time in (expected, float(int(expected))), where
        else:
            assert found == [], f"must not match: {where}"
    lines, ignored, matched, missed = f2b.regex_summary(tools["fail2ban-regex"], f2b.SAMPLE_LOG)
    expected_matches = sum(1 for a in annotated if a.expect.get("match"))
    assert (lines, ignored, matched, missed) == (len(annotated), 0, expected_matches, len(annotated) - expected_matches)
    summary = f"{lines} lines, {ignored} ignored, {matched} matched, {missed} missed"
    assert summary in f2b.SAMPLE_LOG.read_text(), "the sample's header quotes fail2ban-regex's summary"


@pytest.mark.fail2ban
def test_undated_lines_match_only_in_the_shape_a_cut_out_stamp_leaves(tools, tmp_path):
    """fail2ban cuts the stamp out before failregex, and matches undated lines too.

    So an undated line matches exactly when it starts like what is left of a dated one:
    one space and ip[...]. Pinned here because it is fail2ban's behaviour, not ours: fs-guard
    never writes an undated line and no caller can split one (see the filter's comments).
    """
    log = tmp_path / "undated.log"
    log.write_text(
        "ip[198.51.100.66] reason=deny_prefix\n"
        "  ip[198.51.100.67] reason=deny_prefix\n"
        "\tip[198.51.100.68] reason=deny_prefix\n"
        " ip[198.51.100.69] reason=deny_prefix\n"
    )
    assert [m.ip for m in f2b.regex_matches(tools["fail2ban-regex"], log)] == ["198.51.100.69"]


@pytest.mark.fail2ban
def test_lines_written_by_fs_guard_give_only_the_callers_address(tools, call, ban_log):
    """The real screen writes the lines; caller text full of forged ip[...] never counts."""
    forged = [
        "00ip[198.51.100.66]",
        "00\n2026-11-25T10:00:00.000+00:00 ip[198.51.100.66] reason=deny_prefix",
        '00" ip[198.51.100.66] reason=deny_prefix "',
        "00\r\n ip[198.51.100.66] reason=too_long",
        "\u2028ip[198.51.100.66]\x00\x1b[0m",
        "ip[2001:db8::66] reason=scanner_user_agent" * 20,
        "",
    ]
    for number in forged:
        offend(call, FIRST, 1, number=number, ua=" ip[198.51.100.66] reason=deny_prefix\nip[198.51.100.66]")
    offend(call, "2001:db8::7", 1, number="0\n ip[198.51.100.66] reason=deny_prefix")
    offend(call, "::ffff:192.0.2.5", 1)  # IPv4-mapped: written (and banned) as IPv4
    written = ban_log.lines()
    assert len(written) == len(forged) + 2
    matches = f2b.regex_matches(tools["fail2ban-regex"], ban_log.path)
    assert [m.line for m in matches] == written
    assert [m.ip for m in matches] == [FIRST] * len(forged) + ["2001:db8::7", "192.0.2.5"]
    for m in matches:  # the time counted is the line's own stamp (to the second)
        stamp = m.line.split(" ", 1)[0]
        assert m.time == int(datetime.fromisoformat(stamp).timestamp())


@pytest.mark.fail2ban
def test_every_reason_and_event_line_shape_from_banlog_matches(tools, tmp_path):
    now = calendar.timegm((2026, 11, 25, 10, 0, 0)) + 0.25
    lines, hosts = [], []
    for i, reason in enumerate(BAN_REASONS):
        ip = f"192.0.2.{i + 1}" if i % 2 else f"2001:db8::{i + 1:x}"
        lines.append(banlog.line(ip, reason, offence.call_fields("public", "ip[198.51.100.66]", "x"), now=now + i))
        hosts.append(ip)
    # the event hook's shape (issue 3): other fields after reason
    lines.append(banlog.line("198.51.100.1", "register_failure",
                             offence.registration_fields("internal", "1000", "ip[198.51.100.66]", "Z", "REGISTER"),
                             now=now))
    hosts.append("198.51.100.1")
    log = tmp_path / "banlog.log"
    log.write_text("\n".join(lines) + "\n")
    matches = f2b.regex_matches(tools["fail2ban-regex"], log)
    assert [m.ip for m in matches] == hosts
    assert [m.line for m in matches] == lines


@pytest.mark.fail2ban
def test_every_address_form_fs_guard_writes_is_read_back_exactly(tools, tmp_path):
    """The filter's strict address patterns accept every address as Python writes it."""
    rng = random.Random(4)
    addresses = ["0.0.0.0", "255.255.255.255", "1.2.3.4", "::", "::1", "1::", "1::8", "2001:db8::",
                 "1:2:3:4:5:6:7:8", "1:0:0:4:5:0:0:8", "fe80::1:2:3:4"]
    for _ in range(400):
        addresses.append(str(ipaddress.IPv4Address(rng.getrandbits(32))))
    for _ in range(600):
        groups = [rng.choice((0, 0, 0, rng.getrandbits(16), rng.getrandbits(4))) for _ in range(8)]
        addresses.append(str(ipaddress.IPv6Address(int("".join(f"{g:04x}" for g in groups), 16))))
    log = tmp_path / "addresses.log"
    log.write_text("".join(banlog.line(a, "deny_prefix", offence.call_fields("public", "00", None), now=1795600800.0) + "\n" for a in addresses))
    matches = f2b.regex_matches(tools["fail2ban-regex"], log)
    assert [ipaddress.ip_address(m.ip) for m in matches] == [ipaddress.ip_address(a) for a in addresses]


# --- the shipped jail on Debian's stock configuration -------------------------------------


@pytest.mark.fail2ban
def test_shipped_jail_resolves_on_the_stock_configuration_to_an_all_ports_ban(tools, tmp_path):
    if not (f2b.STOCK_CONF / "jail.conf").is_file():
        f2b.missing(f"{f2b.STOCK_CONF}/jail.conf not found (fail2ban not installed from Debian's package)")
    conf = tmp_path / "etc-fail2ban"
    f2b.private_conf(conf)  # only ours: Debian's defaults-debian.conf enables sshd
    stream = f2b.dump_config(tools["fail2ban-client"], conf)
    commands = list(f2b.jail_commands(stream))
    sets = {cmd[2]: cmd[3:] for cmd in commands if cmd[0] == "set"}
    assert ["add", "fs-guard", "auto"] in commands
    assert ["start", "fs-guard"] in stream
    assert sets["maxretry"] == [5] and sets["findtime"] == ["180"] and sets["bantime"] == ["86400"]
    assert sets["datepattern"] == [r"^%Y-%m-%dT%H:%M:%S\.%f%z"]
    assert sets["addignoreip"] == f2b.shipped_option(f2b.JAIL, "fs-guard", "ignoreip").split()
    stock = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
    stock.read(conf / "jail.conf")
    allports = stock.get("DEFAULT", "banaction_allports")
    assert "allports" in allports  # Debian bookworm (fail2ban 1.0.2): iptables-allports
    actions = [cmd for cmd in commands if cmd[0] == "multi-set" and cmd[2] == "action"]
    assert [a[3] for a in actions] == [allports.split("[")[0]]
    options = dict((k, v) for k, v in actions[0][4])
    assert options["protocol"] == "tcp,udp"
    if allports == "iptables-allports":
        assert "-p $proto -j f2b-fs-guard" in options["actionstart"]
        assert options["actionban"] == "<iptables> -I f2b-fs-guard 1 -s <ip> -j <blocktype>"


# --- a private fail2ban-server and the real screen --------------------------------------------


@pytest.mark.fail2ban
def test_five_offences_within_findtime_ban_the_address_four_do_not(server, call, ban_log, capsys, record_property):
    assert server.client("get", "fs-guard", "actions").split()[-1] == "fs-guard-test-record"
    status = server.status()
    assert status["File list"] == str(ban_log.path) and status["Banned IP list"] == []

    for _ in range(4):  # interleaved, as scanners from two places would be
        offend(call, FIRST, 1)
        offend(call, SECOND, 1)
    offend(call, FIRST, 1)  # the fifth
    fifth = time.monotonic()
    assert len(ban_log.lines()) == 9

    f2b.wait_for(lambda: f"ban {FIRST}" in server.record(), timeout=30, what=f"the action to ban {FIRST}")
    elapsed = time.monotonic() - fifth
    record_property("fifth_offence_to_ban_seconds", round(elapsed, 3))
    with capsys.disabled():
        print(f"\n[fs-guard] fifth offence to ban (fail2ban {server.client('version').strip()}, "
              f"polling backend): {elapsed:.2f} s")

    f2b.wait_for(lambda: server.total_failed() == 9, timeout=30, what="all nine offences counted")
    time.sleep(0.5)  # give a wrong second ban every chance to show up
    assert server.banned() == [FIRST]
    assert server.record() == [f"ban {FIRST}"]
    status = server.status()
    assert (status["Currently banned"], status["Total banned"], status["Currently failed"]) == (1, 1, 1)

    server.client("set", "fs-guard", "unbanip", FIRST)
    f2b.wait_for(lambda: f"unban {FIRST}" in server.record(), timeout=30, what="the action to unban")
    assert server.banned() == []
    assert server.record() == [f"ban {FIRST}", f"unban {FIRST}"]


@pytest.mark.fail2ban
def test_loopback_and_private_addresses_are_never_banned(server, call):
    for ip in ("192.168.1.50", "10.1.2.3", "fd00::5", "127.0.0.1"):
        offend(call, ip, 6)
    offend(call, SECOND, 1)  # a public sentinel, written last
    f2b.wait_for(lambda: server.total_failed() >= 1, timeout=30, what="the sentinel counted")
    time.sleep(0.5)
    assert server.total_failed() == 1
    assert server.banned() == [] and server.record() == []


@pytest.mark.fail2ban
def test_ban_unban_and_whitelist_by_hand_as_the_readme_says(server, call):
    server.client("set", "fs-guard", "banip", "192.0.2.77")
    f2b.wait_for(lambda: "ban 192.0.2.77" in server.record(), timeout=30, what="the manual ban")
    assert server.banned() == ["192.0.2.77"]
    assert server.client("get", "fs-guard", "banip", "--with-time").startswith("192.0.2.77 \t")
    server.client("unban", "192.0.2.77")
    f2b.wait_for(lambda: "unban 192.0.2.77" in server.record(), timeout=30, what="the manual unban")
    assert server.banned() == []

    server.client("set", "fs-guard", "addignoreip", SECOND)
    assert SECOND in server.client("get", "fs-guard", "ignoreip")
    offend(call, SECOND, 6)
    offend(call, FIRST, 1)  # a sentinel, written last
    f2b.wait_for(lambda: server.total_failed() >= 1, timeout=30, what="the sentinel counted")
    time.sleep(0.5)
    assert server.total_failed() == 1
    assert server.banned() == []
    assert server.record() == ["ban 192.0.2.77", "unban 192.0.2.77"]


@pytest.mark.fail2ban
@pytest.mark.parametrize("rotation", ["rename+create", "copytruncate"])
def test_a_rotated_ban_log_keeps_being_followed(server, call, ban_log, rotation):
    """Two offences, rotation, three more: the server bans, so it read the new file.

    copytruncate: fail2ban 1.0.2 notices a truncation only while the file is still shorter
    than where it had read up to (it re-reads the first line on a shrink, a new inode, or
    every 30 s); lines that regrow the file past that point before its next look are
    skipped. So this case waits for the first new line to be counted before writing more,
    as happens when a week of ban log is truncated; the rename+create case needs no wait.
    That is why fail2ban/logrotate.d/fs-guard uses create.
    """
    offend(call, FIRST, 2)
    f2b.wait_for(lambda: server.total_failed() == 2, timeout=30, what="two offences counted before rotation")
    path = ban_log.path
    rotated = path.with_name(path.name + ".1")
    if rotation == "rename+create":  # logrotate's "create", as fail2ban/logrotate.d/fs-guard does
        path.rename(rotated)
        path.touch(mode=0o640)
        offend(call, FIRST, 3)
    else:  # logrotate's "copytruncate"
        shutil.copy2(path, rotated)
        with open(path, "r+b") as handle:
            handle.truncate(0)
        offend(call, FIRST, 1)
        f2b.wait_for(lambda: server.total_failed() == 3, timeout=30, what="the first line after truncation counted")
        offend(call, FIRST, 2)
    assert len(ban_log.lines()) == 3, "fs-guard writes to the new file"
    assert len(rotated.read_text().splitlines()) == 2
    f2b.wait_for(lambda: f"ban {FIRST}" in server.record(), timeout=30, what="the ban after rotation")
    assert server.total_failed() == 5
    assert server.banned() == [FIRST]


# --- the private configuration itself ------------------------------------------------------


def filter_and_limits(conf) -> dict:
    """What the fs-guard jail resolves to in ``conf``, but for what the tests' own .local sets."""
    tool = f2b.need_fail2ban("fail2ban-client")["fail2ban-client"]
    commands = f2b.jail_commands(f2b.dump_config(tool, conf))
    return {cmd[2]: cmd[3:] for cmd in commands if cmd[0] == "set" and cmd[2] not in ("addlogpath", "addaction")}


@pytest.mark.fail2ban
def test_the_tests_run_the_repositorys_filter_and_jail_where_fs_guard_is_already_installed(tools, tmp_path):
    """A host where ``fs-guard install`` ran has its own copies in /etc/fail2ban (maybe older)."""
    host = tmp_path / "host-etc-fail2ban"
    f2b.private_conf(host)
    for name in ("filter.d/fs-guard.conf", "jail.d/fs-guard.conf"):
        (host / name).unlink()
    (host / "filter.d" / "fs-guard.conf").write_text("[Definition]\nfailregex = ^an older filter <HOST>$\n")
    (host / "filter.d" / "fs-guard.local").write_text("[Definition]\nfailregex = ^a local override <HOST>$\n")
    (host / "jail.d" / "fs-guard.conf").write_text(
        "[fs-guard]\nenabled = true\nfilter = fs-guard\nmaxretry = 1\nlogpath = /var/log/freeswitch/fs-guard.log\n"
    )
    expected = filter_and_limits(f2b.private_conf(tmp_path / "clean"))
    assert expected["maxretry"] == [5] and "ip\\[" in expected["addfailregex"][0]

    server = f2b.Fail2banServer(tmp_path / "f2b", tmp_path / "fs-guard.log", tools, stock=host)
    try:
        assert filter_and_limits(server.conf) == expected
    finally:
        server.stop()


def test_a_failed_set_up_leaves_no_temporary_directory(tmp_path, monkeypatch):
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "conf").write_text("in the way")
    with pytest.raises(OSError):
        f2b.Fail2banServer(blocked, tmp_path / "fs-guard.log", {})
    assert list(temp.iterdir()) == []

    missing_server = {"fail2ban-server": str(tmp_path / "no-such-fail2ban-server")}
    server = f2b.Fail2banServer(tmp_path / "f2b", tmp_path / "fs-guard.log", missing_server)
    try:
        with pytest.raises(FileNotFoundError):
            server.start()
    finally:
        server.stop()
    assert list(temp.iterdir()) == []
