"""``fs-guard doctor``: is the live chain working, link by link, and what fixes a broken link.

The chain a rejected call travels: FreeSWITCH answers, mod_python3 is loaded, its Python
imports this fs-guard, the screen runs first in each screened context, the event hook
runs, the configuration in force is the file on disk and valid, the ban log exists and
FreeSWITCH can write it, a fail2ban jail reads it, the home region is FreeSWITCH's
``default_country``; and, when configured, the cluster's
Redis and the metrics endpoint answer.

Each check is a small function that is handed what it reads (a probe or the answer of
an earlier link) and returns one ``Finding``; ``examine`` runs them in chain order and
marks a link it cannot reach as unknown. Every probe is bounded by a timeout, and none
changes anything: they only ask (fs_cli, fail2ban-client, a PING, an HTTP GET) and stat.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from fs_guard import __version__
from fs_guard.fsconf import country, fsmodel, fsxml
from fs_guard.fsconf.install import DEFAULT_CONTEXTS, JAIL_FILE
from fs_guard.fsconf.live import FS_CLI, FS_CLI_TIMEOUT, EventSocket, Fail2banClient, FreeSwitchApi, FsCli, Reply
from fs_guard.runtime import host
from fs_guard.runtime.config import ClusterSettings, Config, ConfigError, MetricsSettings, load_config

OK = "ok"
PROBLEM = "problem"
UNKNOWN = "unknown"  # could not be checked
SKIPPED = "skipped"  # not configured: nothing to check
#: What a run's worst finding makes of the exit status.
EXIT_OK, EXIT_PROBLEM, EXIT_UNKNOWN = 0, 1, 2
#: What FreeSWITCH writes its pid into, in its run_dir (switch_core.c).
PID_FILE = "freeswitch.pid"
#: The account FreeSWITCH's packages run it as, when the running process cannot be found.
FREESWITCH_USER = "freeswitch"
#: What fs-guard's metrics endpoint always exports (the ``metrics`` setting).
BUILD_INFO = "fs_guard_build_info"
HTTP_TIMEOUT = 2.0
HTTP_MAX_BYTES = 4 << 20
#: fs_cli's built-in profile (fs_cli.c), used when no fs_cli.conf says otherwise.
FS_CLI_HOST, FS_CLI_PORT, FS_CLI_PASSWORD = "127.0.0.1", "8021", "ClueCon"
_JAIL_LIST = re.compile(r"Jail list:\s*(.*)")


@dataclass(frozen=True)
class Finding:
    """One link of the chain: its state, what was seen, and the command that fixes it."""

    link: str
    status: str
    what: str
    fix: str = ""


def ok(link: str, what: str) -> Finding:
    return Finding(link, OK, what)


def problem(link: str, what: str, fix: str) -> Finding:
    return Finding(link, PROBLEM, what, fix)


def unknown(link: str, what: str, fix: str = "") -> Finding:
    return Finding(link, UNKNOWN, what, fix)


def exit_status(findings: Sequence[Finding]) -> int:
    """1 when any link is broken; else 2 when any could not be checked; else 0."""
    states = {finding.status for finding in findings}
    if PROBLEM in states:
        return EXIT_PROBLEM
    return EXIT_UNKNOWN if UNKNOWN in states else EXIT_OK


# -- who FreeSWITCH runs as --------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """A user and its groups: what decides whether a process may write a file."""

    user: str
    uid: int
    gid: int  # the primary group
    gids: FrozenSet[int]
    how: str  # how it was found

    @property
    def group(self) -> str:
        try:
            return grp.getgrgid(self.gid).gr_name
        except KeyError:
            return str(self.gid)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def process_identity(pid: int, proc: str = "/proc") -> Optional[Identity]:
    """The effective user and groups of process ``pid`` (Linux ``/proc/PID/status``)."""
    try:
        with open(os.path.join(proc, str(pid), "status"), encoding="utf-8", errors="replace") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        uid, gid = int(fields["Uid"].split()[1]), int(fields["Gid"].split()[1])
        groups = frozenset(int(g) for g in fields.get("Groups", "").split())
    except (OSError, KeyError, IndexError, ValueError):
        return None
    return Identity(_user_name(uid), uid, gid, groups | {gid}, f"the running FreeSWITCH's user, pid {pid}")


def account_identity(user: str) -> Optional[Identity]:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    groups = frozenset(os.getgrouplist(user, entry.pw_gid))
    return Identity(user, entry.pw_uid, entry.pw_gid, groups, f"the {user} account")


def freeswitch_identity(run_dir: Optional[str]) -> Optional[Identity]:
    """Who FreeSWITCH runs as: its process (pid file in run_dir), else the freeswitch account."""
    if run_dir:
        try:
            with open(os.path.join(run_dir, PID_FILE), encoding="ascii", errors="replace") as handle:
                found = process_identity(int(handle.read().strip()))
            if found is not None:
                return found
        except (OSError, ValueError):
            pass
    return account_identity(FREESWITCH_USER)


def may(st: os.stat_result, who: Identity, bit: int) -> bool:
    """Whether ``who`` has permission ``bit`` (4 read, 2 write, 1 search) on a file by its mode."""
    if who.uid == 0:
        return True  # what it may not do (execute a file no one may) never matters here
    if st.st_uid == who.uid:
        return bool(st.st_mode & (bit << 6))
    if st.st_gid in who.gids:
        return bool(st.st_mode & (bit << 3))
    return bool(st.st_mode & bit)


# -- the probes -------------------------------------------------------------------------


def http_get(url: str, timeout: float = HTTP_TIMEOUT) -> Tuple[Optional[int], str]:
    """(HTTP status, body) of a GET, (None, why) when there is no answer; at most ``timeout``
    seconds in all, however slowly the server sends."""
    deadline = time.monotonic() + timeout
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http URL built here)
            chunks: List[bytes] = []
            size = 0
            while size < HTTP_MAX_BYTES and time.monotonic() < deadline:
                chunk = response.read1(65536)
                if not chunk:
                    return response.status, b"".join(chunks).decode("utf-8", "replace")
                chunks.append(chunk)
                size += len(chunk)
            return None, f"the answer did not end within {timeout:g} s"
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (OSError, ValueError) as exc:
        return None, str(getattr(exc, "reason", None) or exc)


def _ping(settings: ClusterSettings) -> Tuple[bool, str]:
    from fs_guard.runtime.cluster.link import ping  # brings redis-py, only for a configuration with a cluster

    return ping(settings)


@dataclass(frozen=True)
class Probes:
    """What doctor reads the live system with; tests hand in their own."""

    freeswitch: FreeSwitchApi = field(default_factory=FsCli)
    timeout: float = FS_CLI_TIMEOUT  # for the event socket, when fs_cli gets no answer
    fail2ban: Fail2banClient = field(default_factory=Fail2banClient)
    identity: Callable[[Optional[str]], Optional[Identity]] = freeswitch_identity
    read_config: Callable[[str], Config] = load_config
    ping: Callable[[ClusterSettings], Tuple[bool, str]] = _ping
    fetch: Callable[[str, float], Tuple[Optional[int], str]] = http_get
    stat: Callable[[str], os.stat_result] = os.stat


@dataclass(frozen=True)
class Where:
    """FreeSWITCH's directories as it answered them (the packaged defaults otherwise)."""

    conf_dir: str
    run_dir: Optional[str]

    @property
    def install(self) -> str:
        return f"fs-guard install --conf-dir {self.conf_dir}"


# -- the checks, in chain order -----------------------------------------------------------


def section(report: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A part of fs_guard.status's report; an empty one when it is missing or not an object."""
    value = report.get(name)
    return value if isinstance(value, dict) else {}


def event_socket(config: Optional[fsmodel.FsConfig], timeout: float) -> Optional[EventSocket]:
    """FreeSWITCH's event socket as event_socket.conf.xml sets it up (fs_cli's built-in
    profile for what it leaves out); None without one, or with an address only FreeSWITCH
    could work out (``$${local_ip_v4}``)."""
    conf = config.configuration("event_socket.conf") if config is not None else None
    if conf is None:
        return None
    found = fsmodel.params(conf.find("settings"))

    def value(name: str, default: str) -> str:
        return found[name].get("value").strip() if name in found else default

    host = value("listen-ip", FS_CLI_HOST).strip("[]")
    port = value("listen-port", FS_CLI_PORT)
    if "$${" in host or not port.isdigit():
        return None
    host = FS_CLI_HOST if host in ("", "::", "0.0.0.0") else host  # every address: loopback is one
    return EventSocket(host, int(port), value("password", FS_CLI_PASSWORD), timeout)


def _ready(reply: Reply, how: str) -> Finding:
    ready = next((line.strip() for line in reply.out.splitlines() if "FreeSWITCH" in line and " is " in line), "")
    if ready.endswith("is ready"):
        return ok("freeswitch", ready + how)
    return unknown("freeswitch", f"FreeSWITCH is not ready: {ready or reply.first_line}",
                   "wait until it has started, then run fs-guard doctor again")


def reach_freeswitch(fs: FreeSwitchApi, socket: Callable[[], Optional[EventSocket]]) -> Tuple[FreeSwitchApi, Finding]:
    """FreeSWITCH answers ``status``, through fs_cli or, when fs_cli gets no answer (not on
    PATH, not its password), on the event socket of its configuration (``socket``, asked
    only then); returns what answered, for the later links."""
    reply = fs.ask("status")
    if reply.ok:
        return fs, _ready(reply, "")
    direct = socket()
    second = direct.ask("status") if direct is not None else None
    if direct is not None and second.ok:
        return direct, _ready(second, f" (asked on its event socket {direct.address}; {FS_CLI}: {reply.first_line})")
    tried = f"; its event socket {direct.address}: {second.first_line}" if direct is not None else ""
    if reply.failure.startswith(f"no {FS_CLI}"):
        return fs, unknown("freeswitch", f"{reply.failure}: cannot ask FreeSWITCH{tried}",
                           "export PATH=$PATH:/usr/local/freeswitch/bin   # where a source build puts fs_cli")
    return fs, unknown("freeswitch", f"FreeSWITCH does not answer {FS_CLI} -x status: {reply.first_line}{tried}",
                       "systemctl start freeswitch   # if it runs: fs_cli's password (/etc/fs_cli.conf) must be "
                       "event_socket.conf.xml's")


def check_mod_python3(fs: FreeSwitchApi) -> Finding:
    reply = fs.ask(f"module_exists {fsmodel.PYTHON_MODULE}")
    if reply.ok and reply.out.strip() == "true":
        return ok("mod_python3", "loaded")
    if reply.ok and reply.out.strip() == "false":
        return problem("mod_python3", "not loaded: no python application, no screen",
                       f'fs_cli -x "load {fsmodel.PYTHON_MODULE}"   # and <load module="{fsmodel.PYTHON_MODULE}"/> '
                       "in modules.conf.xml (fs-guard install adds it)")
    return unknown("mod_python3", f"no answer to module_exists: {reply.first_line}")


def check_import(fs: FreeSwitchApi, where: Where) -> Tuple[Finding, Optional[Dict[str, Any]]]:
    """FreeSWITCH's Python imports fs_guard (``python fs_guard.status json``) and it is this
    version; returns the status report too, which later links read."""
    reply = fs.ask("python fs_guard.status json")
    if not reply.ok:
        return unknown("import", f"no answer to python fs_guard.status: {reply.first_line}"), None
    try:
        report = json.loads(reply.out)
        version = report.get("version") if isinstance(report, dict) else None
    except ValueError:
        version = None
    if version is None:
        return problem(
            "import",
            f"FreeSWITCH's Python cannot import fs_guard (python fs_guard.status answered: {reply.first_line}; "
            "its log says why: 'Error importing module')",
            f"{where.install}   # puts fs-guard where mod_python3 looks (docs/install.md)",
        ), None
    if version != __version__:
        return problem(
            "import",
            f"FreeSWITCH runs fs-guard {version}, this command is fs-guard {__version__}",
            f"{where.install}   # this version where mod_python3 looks; then: systemctl restart freeswitch",
        ), report
    return ok("import", f"FreeSWITCH's Python imports fs_guard {version}"), report


def check_screen(fs: FreeSwitchApi, context: str, on_disk: Optional[fsmodel.FsConfig], where: Where) -> Finding:
    """The screen is the first action of every call in ``context``, in the dialplan FreeSWITCH
    has loaded (``xml_locate``); the fix depends on whether the file on disk has it already."""
    link = f"screen {context}"
    reply = fs.ask(f"xml_locate dialplan context name {context}")
    if not reply.ok:
        return unknown(link, f"no answer to xml_locate: {reply.first_line}")
    try:
        loaded = fsxml.parse_text(reply.out, "xml_locate")
    except fsxml.XmlError:
        loaded = None
    if loaded is None or loaded.tag != "context":
        return problem(link, f"FreeSWITCH has no context {context} (xml_locate answered: {reply.first_line})",
                       f"fs-guard install --conf-dir {where.conf_dir} --context {context}")
    if fsmodel.screen_runs_first(loaded):
        return ok(link, "fs_guard.screen is the first action of every call")
    lead = fsmodel.leading_action(loaded)
    first = (f"the first action is {lead[0].get('application')} {lead[0].get('data')}".rstrip()
             + f" (extension {lead[1].get('name')})") if lead else "what runs first depends on the call"
    if lead and fsmodel.is_screen(lead[0]):
        first = f'extension {lead[1].get("name")} runs fs_guard.screen without continue="true": the dialplan stops'
    disk = on_disk.context(context) if on_disk is not None else None
    if disk is not None and fsmodel.screen_runs_first(disk):
        return problem(link, f"{first}; the file on disk has the screen first, FreeSWITCH has not read it",
                       'fs_cli -x "reloadxml"')
    return problem(link, first, f'{where.install}; then: fs_cli -x "reloadxml"')


def check_hook(report: Mapping[str, Any], on_disk: Optional[fsmodel.FsConfig], where: Where) -> Finding:
    hook = section(report, "register_failure_hook")
    if hook.get("running"):
        return ok("register hook", f"fs_guard.events running since {hook.get('since')}")
    what = "fs_guard.events is not running: failed registrations write no ban lines"
    if on_disk is not None and fsmodel.runs_events_hook(on_disk):
        return problem("register hook", f"{what}; python.conf.xml on disk starts it (when mod_python3 loads)",
                       "systemctl restart freeswitch")
    return problem("register hook", what,
                   f"{where.install}   # the startup-script in python.conf.xml; then: systemctl restart freeswitch")


def check_config(report: Mapping[str, Any], read: Callable[[str], Config], cli_path: str,
                 where: Where) -> Tuple[Finding, Optional[Config]]:
    """The configuration in force is the file FreeSWITCH reads, as it is on disk, and valid;
    returns that file's configuration (None when it is not good)."""
    config = section(report, "config")
    path, in_force, error = config.get("path"), config.get("file"), config.get("last_error")
    if not path:
        return unknown("config", "fs_guard.status names no configuration file"), None
    try:
        on_disk: Optional[Config] = read(path)
        invalid = ""
    except ConfigError as exc:
        on_disk, invalid = None, "; ".join(exc.errors)
    check = f"fs-guard check-config {path}"
    if error:
        return problem("config", f"FreeSWITCH rejected {path} and keeps its last good configuration: {error}",
                       check), on_disk
    if not in_force:
        return problem("config", f"FreeSWITCH runs on the built-in defaults: no good file at {path}",
                       f"{where.install}   # installs {os.path.basename(path)} with the shipped rules"), on_disk
    if invalid:
        return problem("config", f"{path} is not valid (FreeSWITCH will keep its last good one): {invalid}",
                       check), None
    if os.path.realpath(in_force) != os.path.realpath(path):
        return problem("config", f"in force: {in_force}, but FreeSWITCH now reads {path}",
                       'fs_cli -x "python fs_guard.status reload"'), on_disk
    if os.path.realpath(cli_path) != os.path.realpath(path):
        return problem("config", f"{path} is in force and valid, but fs-guard check-config and test read {cli_path}",
                       f"export FS_GUARD_CONFIG={path}"), on_disk
    return ok("config", f"{path}: in force and valid"), on_disk


def check_ban_log(report: Mapping[str, Any], who: Optional[Identity], stat: Callable[[str], os.stat_result]) -> Finding:
    """The ban log exists and FreeSWITCH's user may write it and enter its directory."""
    path = str(report.get("ban_log") or "")
    errors = section(report, "counters").get("ban_log_errors", 0)
    since = f"; {errors} write error(s) since {report.get('counters_since')}" if errors else ""
    user, group = (who.user, who.group) if who is not None else (FREESWITCH_USER, FREESWITCH_USER)
    try:
        st = stat(path)
    except FileNotFoundError:
        return problem("ban log", f"{path} does not exist (fail2ban 1.0 will not start while a jail's log is missing)"
                       + since, f"install -o {user} -g {group} -m 0640 /dev/null {path}")
    except OSError as exc:
        return unknown("ban log", f"{path}: {exc.strerror or exc}", "run fs-guard doctor as root")
    if who is None:
        return unknown("ban log", f"{path} exists; cannot tell which user FreeSWITCH runs as{since}")
    directory = os.path.dirname(path)
    try:
        reachable = may(stat(directory), who, 1)
    except OSError:
        reachable = False
    shown = f"{path} (owner {_user_name(st.st_uid)}, group {st.st_gid}, mode {st.st_mode & 0o7777:04o})"
    if not reachable:
        return problem("ban log", f"{who.user} ({who.how}) cannot enter {directory}{since}",
                       f"chmod o+x {directory}   # or make {who.user} its owner")
    if not may(st, who, 2):
        return problem("ban log", f"{who.user} ({who.how}) cannot write {shown}{since}", f"chown {user}:{group} {path}")
    return ok("ban log", f"{path}: {who.user} ({who.how}) can write it{since}")


def _logpaths(answer: str) -> List[str]:
    """``fail2ban-client get JAIL logpath``: the paths after ``|-`` / ``\\`-``."""
    return [line[3:].strip() for line in answer.splitlines() if line.startswith(("|- ", "`- "))]


def check_fail2ban(client: Fail2banClient, ban_log: str) -> Finding:
    reply = client.ask("status")
    if not reply.ok:
        said = reply.text or reply.failure
        if "you must be root" in said or "Permission denied" in said:
            return unknown("fail2ban", f"fail2ban-client: {reply.first_line}", "run fs-guard doctor as root")
        if reply.failure.startswith("no "):
            return problem("fail2ban", "fail2ban is not installed (no fail2ban-client)",
                           "apt-get install fail2ban   # or: dnf install fail2ban")
        if "Is fail2ban running" in said:
            return problem("fail2ban", "fail2ban is not running", "systemctl start fail2ban")
        return unknown("fail2ban", f"fail2ban-client status: {reply.first_line}")
    found = _JAIL_LIST.search(reply.out)
    jails = [name.strip() for name in found.group(1).split(",") if name.strip()] if found else []
    target = os.path.realpath(ban_log)
    elsewhere = []
    for jail in jails:
        paths = _logpaths(client.ask("get", jail, "logpath").out)
        if any(os.path.realpath(p) == target for p in paths):
            return ok("fail2ban", f"jail {jail} reads {ban_log}")
        if jail == "fs-guard":
            elsewhere = paths
    if elsewhere:
        return problem("fail2ban", f"jail fs-guard reads {', '.join(elsewhere)}, not {ban_log}",
                       f"set logpath = {ban_log} in /etc/fail2ban/jail.d/fs-guard.local under [fs-guard]; "
                       "then: fail2ban-client reload")
    return problem("fail2ban", f"no jail reads {ban_log} (jails: {', '.join(jails) or 'none'})",
                   f"fs-guard install   # installs {JAIL_FILE}; then: fail2ban-client reload")


REGION = "home region"


def check_region(config: Config, fs: FreeSwitchApi) -> Finding:
    """fs-guard's home region (``dialling.region``) is the country the running FreeSWITCH was
    given (its global variable ``default_country``, set in vars.xml)."""
    regions = country.configured_regions(config.raw)
    reply = fs.ask(f"global_getvar {country.VARIABLE}")
    answer = reply.out.strip() if reply.ok else ""
    freeswitch = country.of("" if answer.startswith("-ERR") or "\n" in answer else answer,
                            f"FreeSWITCH's {country.VARIABLE}")
    if not regions:
        known = f" (FreeSWITCH's default_country is {freeswitch.code})" if freeswitch and freeswitch.usable else ""
        return Finding(REGION, SKIPPED, f"no dialling.region: numbers are not classified{known}")
    shown = ", ".join(f"{code}{f' (context {where})' if where else ''}" for where, code in sorted(regions.items()))
    if freeswitch is None or not freeswitch.usable:
        why = freeswitch.problem if freeswitch is not None else "FreeSWITCH has no default_country"
        return ok(REGION, f"dialling.region {shown}; nothing to compare it with: {why}")
    differences = country.differences(regions, freeswitch)
    if not differences:
        return ok(REGION, f"dialling.region {shown} is FreeSWITCH's default_country")
    code = differences[0][1]
    return problem(REGION, "; ".join(country.difference(where, found, freeswitch) for where, found in differences),
                   f'set "region": "{freeswitch.code}" in {config.source or "fs_guard.json"}   # or, if the switch '
                   f"is in {code}: default_country={code} in vars.xml, then restart FreeSWITCH")


def check_cluster(config: Config, report: Mapping[str, Any], ping: Callable[[ClusterSettings], Tuple[bool, str]]) -> Finding:
    settings = config.cluster
    if settings is None:
        return Finding("cluster", SKIPPED, "not configured")
    from fs_guard.runtime.cluster.health import Misconfigured
    from fs_guard.runtime.cluster.link import NOT_INSTALLED

    try:
        answered, what = ping(settings)
    except Misconfigured as exc:
        return problem("cluster", f"the cluster setting cannot work: {exc}",
                       "pip install 'fs-guard[cluster]'   # where this fs-guard runs, to check the cluster"
                       if str(exc) == NOT_INSTALLED else "fs-guard check-config   # then change fail2ban.cluster.url")
    seen = section(report, "cluster")
    if not answered:
        return problem("cluster", f"{settings.shown_url} does not answer a PING: {what}",
                       f"systemctl status redis-server   # on the host of {settings.shown_url}")
    if seen.get("state") == "down":
        return problem("cluster", f"{settings.shown_url} answers here, but FreeSWITCH's node has it down since "
                       f"{seen.get('since')}: {seen.get('last_error')}",
                       "wait for its retry (fs_cli -x \"python fs_guard.status\" shows it), or check the network "
                       "from FreeSWITCH's host")
    if seen.get("state") == "misconfigured":  # redis-py missing from the Python FreeSWITCH runs, for one
        return problem("cluster", f"{settings.shown_url} answers here, but FreeSWITCH's node cannot use it: "
                       f"{seen.get('last_error')}", "fs-guard install --package '.[cluster]'   # from the source "
                       "directory: redis-py into FreeSWITCH's script directory")
    return ok("cluster", f"{settings.shown_url}: {what}")


def check_metrics(settings: Optional[MetricsSettings],
                  fetch: Callable[[str, float], Tuple[Optional[int], str]]) -> Finding:
    """The ``metrics`` setting's endpoint answers with fs-guard's metrics."""
    if settings is None:
        return Finding("metrics", SKIPPED, "not configured")
    url = settings.url  # the address the hook listens on, default included
    status, body = fetch(url, HTTP_TIMEOUT)
    fix = ('the fs_guard.events hook serves it: see "register hook" above and FreeSWITCH\'s log '
           "(grep fs-guard freeswitch.log)")
    if status is None:
        return problem("metrics", f"{url} does not answer: {body}", fix)
    if status != 200 or BUILD_INFO not in body:
        return problem("metrics", f"{url} answered HTTP {status} without {BUILD_INFO}: not fs-guard's endpoint", fix)
    return ok("metrics", f"{url} answers")


# -- the whole chain ---------------------------------------------------------------------------

#: The links after FreeSWITCH itself, around the screens of each context.
BEFORE_SCREENS = ("mod_python3", "import")
AFTER_SCREENS = ("register hook", "config", "ban log", "fail2ban", REGION, "cluster", "metrics")


def _not_reached(links: Sequence[str], because: str) -> List[Finding]:
    return [unknown(link, f"not checked: {because}") for link in links]


def _load_configuration(conf_dir: str) -> Optional[fsmodel.FsConfig]:
    try:
        return fsmodel.load(conf_dir)
    except (fsmodel.NotFreeSwitch, OSError):
        return None


def examine(probes: Probes, cli_config: str, contexts: Sequence[str] = DEFAULT_CONTEXTS,
            conf_dir: str = host.DEFAULT_CONF_DIR) -> List[Finding]:
    """Every link, in chain order; ``cli_config`` is the file fs-guard's own commands read,
    ``conf_dir`` FreeSWITCH's configuration when FreeSWITCH does not say where it is."""
    fs, first = reach_freeswitch(probes.freeswitch,
                                 lambda: event_socket(_load_configuration(conf_dir), probes.timeout))
    screens = [f"screen {context}" for context in contexts]
    if first.status != OK:
        return [first] + _not_reached(BEFORE_SCREENS + tuple(screens) + AFTER_SCREENS, "FreeSWITCH does not answer")
    where = Where(fs.global_path("conf_dir") or conf_dir, fs.global_path("run_dir"))
    findings = [first, check_mod_python3(fs)]
    report = None
    if findings[-1].status == OK:
        imported, report = check_import(fs, where)
        findings.append(imported)
    else:
        findings += _not_reached(["import"], "mod_python3 is not loaded")
    on_disk = _load_configuration(where.conf_dir)
    findings += [check_screen(fs, context, on_disk, where) for context in contexts]
    if report is None:
        return findings + _not_reached(AFTER_SCREENS, "fs_guard.status does not answer")
    findings.append(check_hook(report, on_disk, where))
    config_finding, config = check_config(report, probes.read_config, cli_config, where)
    findings.append(config_finding)
    findings.append(check_ban_log(report, probes.identity(where.run_dir), probes.stat))
    findings.append(check_fail2ban(probes.fail2ban, str(report.get("ban_log") or "")))
    if config is None:
        return findings + _not_reached((REGION, "cluster", "metrics"), "the configuration file is not good")
    findings.append(check_region(config, fs))
    findings.append(check_cluster(config, report, probes.ping))
    findings.append(check_metrics(config.metrics, probes.fetch))
    return findings


def as_json(findings: Sequence[Finding]) -> Dict[str, Any]:
    return {
        "version": __version__,
        "exit_status": exit_status(findings),
        "links": [finding.__dict__ for finding in findings],
    }
