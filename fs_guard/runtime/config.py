"""Configuration: find the file, validate it, compile it once, reload it when it changes.

Only the top-level ``"fail2ban"`` object is read, so a mod_cti ``cti.json`` works as
it is. A bad or missing file never replaces a good configuration: the last good one
stays in force and the error is kept for ``fs_guard.status`` and ``check-config``.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import re
import socket
import threading
import time
from urllib.parse import parse_qsl, urlencode, urlsplit
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

from fs_guard.runtime import destinations, host
from fs_guard.runtime.banlog import escape
from fs_guard.runtime.limits import NO_LIMITS, LimitSet, compile_limits
from fs_guard.runtime.rules import PrefixSet, Rules

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.json")
DEFAULT_FILENAME = "fs-guard-ban.log"
CONFIG_BASENAME = "fs_guard.json"
#: Keys a context may override; anything it leaves out comes from the top level.
RULE_KEYS = (
    "destination_number_max_len",
    "deny_prefix",
    "allow_prefix",
    "deny_user_agent",
    "allowed_characters",
    "monitor",
    "ban",
    "dialling",
    "deny_countries",
    "allow_countries",
    "deny_number_types",
    "reject_invalid_numbers",
)
#: Rules that read a number's destination (country, type, validity): they need dialling.region.
DESTINATION_KEYS = ("deny_countries", "allow_countries", "deny_number_types", "reject_invalid_numbers")
#: The built-in defaults, in force until a good file has been loaded.
DEFAULTS: Mapping[str, Any] = {
    "filename": DEFAULT_FILENAME,
    "destination_number_max_len": 12,
    "deny_prefix": ["00", "+"],
    "allow_prefix": [],
    "deny_user_agent": [],
    "monitor": False,
    "ban": True,
    "trusted_networks": [],
    "on_error": "reject",
}


#: The ``cluster`` setting's defaults: Redis keys start with this; how long a call waits for Redis.
DEFAULT_KEY_PREFIX = "fs-guard:"
DEFAULT_CLUSTER_TIMEOUT_MS = 100
NODE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DATABASE = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class ClusterSettings:
    """Where the nodes of a cluster share their limits and bans (``fs_guard.runtime.cluster``)."""

    url: str = field(repr=False)  # as redis-py's from_url takes it; may hold a password
    key_prefix: str
    node: str  # this node's name: unique in the cluster, written as node=NAME on lines it shares
    timeout: float  # seconds a call waits for Redis

    @property
    def shown_url(self) -> str:
        """The URL without its password, for status and logs."""
        parts = urlsplit(self.url)
        netloc = parts.netloc
        if parts.password is not None:
            netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
        query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)], safe="/*")
        return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


#: The ``metrics`` setting: where the endpoint listens unless ``listen`` says otherwise. Loopback;
#: outside Prometheus' exporter port allocations (9100-9999 is fully allocated, new ones go
#: from 10000 up), FreeSWITCH's own ports and its RTP range (16384-32768).
DEFAULT_METRICS_LISTEN = "127.0.0.1:15248"
METRICS_EXTRA = ("pip install 'fs-guard[metrics]' (for FreeSWITCH, from the source directory: "
                 "fs-guard install --package '.[metrics]')")


@dataclass(frozen=True)
class MetricsSettings:
    """Where the event hook serves Prometheus' text format (``fs_guard.runtime.metrics_endpoint``)."""

    host: str  # an IP address
    port: int

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.listen}/metrics"


def parse_listen(text: str) -> Optional[MetricsSettings]:
    """``HOST:PORT`` (``[IPv6]:PORT``; ``localhost``; a bare PORT is loopback), or None."""
    host, colon, port = text.rpartition(":")
    if not colon:
        host, port = "127.0.0.1", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not port.isdigit() or not 0 < int(port) < 65536 or getattr(address, "scope_id", None):
        return None
    return MetricsSettings(str(address), int(port))


class ConfigError(Exception):
    """A configuration that must not take effect; ``errors`` name each field's path."""

    def __init__(self, source: str, errors: Sequence[str]) -> None:
        self.source = source
        self.errors = tuple(errors)
        super().__init__(f"{source}: " + "; ".join(self.errors))


@dataclass(frozen=True)
class Config:
    """A compiled configuration: what the hot path reads, nothing else."""

    base: Rules
    contexts: Mapping[str, Rules]
    ban_log_path: str
    trusted_networks: Tuple[Network, ...]
    on_error: str
    source: Optional[str]  # the file it came from; None for the built-in defaults
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)
    limits: LimitSet = NO_LIMITS
    cluster: Optional[ClusterSettings] = None  # None: limits and bans are this node's alone
    metrics: Optional[MetricsSettings] = None  # None: no metrics endpoint

    def rules_for(self, context: str) -> Rules:
        return self.contexts.get(context, self.base)

    def is_trusted(self, address: Union[ipaddress.IPv4Address, ipaddress.IPv6Address]) -> bool:
        return any(address in network for network in self.trusted_networks)

    @property
    def reject_on_error(self) -> bool:
        return self.on_error != "accept"


def _path_of(parts: Sequence[Any]) -> str:
    """A field's path, ``fail2ban.deny_prefix[1]``; ``(document)`` for the file's whole document."""
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(document)"


def _schema_errors(document: Any) -> List[str]:
    import jsonschema  # imported on first load only: it is the slowest import we have

    validator = _validator(jsonschema)
    errors = []
    for error in sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]):
        parts = list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            for key in sorted(k for k in error.instance if k not in allowed):
                errors.append(f"{_path_of(parts + [key])}: unknown key")
            continue
        if error.validator == "required" and not parts:
            errors.append('fail2ban: missing (the file needs a top-level "fail2ban" object)')
            continue
        hint = ' (the file must be a JSON object with a "fail2ban" object in it)' if not parts else ""
        errors.append(f"{_path_of(parts)}: {error.message}{hint}")
    return errors


_VALIDATOR = None


def _validator(jsonschema: Any) -> Any:
    global _VALIDATOR
    if _VALIDATOR is None:
        with open(SCHEMA_PATH, encoding="utf-8") as handle:
            schema = json.load(handle)
        _VALIDATOR = jsonschema.Draft7Validator(schema)
    return _VALIDATOR


def _networks(values: Sequence[str]) -> Tuple[Tuple[Network, ...], List[str]]:
    networks, errors = [], []
    for index, value in enumerate(values):
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            errors.append(f"fail2ban.trusted_networks[{index}]: {value!r} is not an IPv4 or IPv6 network (CIDR)")
    return tuple(networks), errors


def _rules(values: Mapping[str, Any]) -> Rules:
    chars = values.get("allowed_characters")
    dialling = _dialling(values.get("dialling") or {})
    classifier = destinations.classifier_for(dialling) if dialling is not None else None
    allow = frozenset(values.get("allow_countries", ()))
    return Rules(
        max_len=values["destination_number_max_len"],
        deny=PrefixSet.of(values["deny_prefix"]),
        allow=PrefixSet.of(values["allow_prefix"]),
        deny_user_agents=tuple(dict.fromkeys(ua.casefold() for ua in values["deny_user_agent"])),
        allowed_characters=frozenset(chars) if chars else None,
        monitor=values["monitor"],
        ban=values["ban"],
        classifier=classifier,
        deny_countries=frozenset(values.get("deny_countries", ())),
        allow_countries=allow | {dialling.region} if allow and dialling is not None else allow,
        deny_types=frozenset(values.get("deny_number_types", ())),
        reject_invalid=values.get("reject_invalid_numbers", False),
        destination_rules=any(values.get(key) for key in DESTINATION_KEYS),
    )


def _dialling(values: Mapping[str, Any]) -> Optional[destinations.Dialling]:
    if "region" not in values:
        return None
    return destinations.Dialling(
        region=values["region"],
        international_prefixes=tuple(values.get("international_prefixes", ())),
        national_prefix=values.get("national_prefix"),
        outside_line=values.get("outside_line", ""),
        plus_is_e164=values.get("plus_is_e164", True),
    )


def _destination_errors(written: Mapping[str, Any], merged: Mapping[str, Any], path: str) -> List[str]:
    """Region codes and number types as written at ``path``, checked against libphonenumber, and
    destination rules without a home region. libphonenumber is imported only when one is set."""
    errors: List[str] = []
    region = written.get("dialling", {}).get("region")
    if region is not None:
        errors += destinations.region_errors(f"{path}.dialling.region", [region], non_geographic=False, listed=False)
    for key in ("deny_countries", "allow_countries"):
        if written.get(key):
            errors += destinations.region_errors(f"{path}.{key}", written[key])
    if written.get("deny_number_types"):
        errors += destinations.type_errors(f"{path}.deny_number_types", written["deny_number_types"])
    used = [key for key in DESTINATION_KEYS if merged.get(key)]
    if used and "region" not in merged.get("dialling", {}):
        errors.append(f"{path}: {', '.join(used)} need the home country, dialling.region "
                      '(an ISO 3166 code such as "GB" or "US")')
    return errors


def _limit_destination_errors(limits: LimitSet, merged: Mapping[str, Any], overrides: Mapping[str, Any]) -> List[str]:
    """Limits by destination need a home region somewhere."""
    errors = []
    for index, limit in enumerate(limits.limits):
        path = f"fail2ban.limits[{index}]"
        if limit.by_destination and not any("region" in values.get("dialling", {})
                                            for values in [merged, *overrides.values()]):
            errors.append(f"{path}: countries, number_types and distinct_countries need dialling.region "
                          '(the home country, e.g. "GB")')
    return errors


def _context_values(merged: Mapping[str, Any], override: Mapping[str, Any]) -> Mapping[str, Any]:
    """A context's settings: its own over the top level's (``dialling`` key by key)."""
    values = {**merged, **override}
    if "dialling" in override:
        values["dialling"] = {**merged.get("dialling", {}), **override["dialling"]}
    return values


def _cluster(values: Optional[Mapping[str, Any]]) -> Tuple[Optional[ClusterSettings], List[str]]:
    if values is None:
        return None, []
    node = values.get("node") or socket.gethostname()
    if not NODE_NAME.fullmatch(node):
        return None, [f"fail2ban.cluster.node: the host name {escape(node)!r} is not a plain name "
                      "(letters, digits, _ . -, at most 64): set node"]
    settings = ClusterSettings(values["url"], values.get("key_prefix", DEFAULT_KEY_PREFIX), node,
                               values.get("timeout_ms", DEFAULT_CLUSTER_TIMEOUT_MS) / 1000.0)
    errors = _url_errors(settings)
    return (None if errors else settings), errors


def _url_errors(settings: ClusterSettings) -> List[str]:
    """What in the URL redis-py would refuse, or read as something else (a database that is
    not a number is taken as database 0), before anything tries to connect."""
    parts = urlsplit(settings.url)
    where = f"fail2ban.cluster.url: {escape(settings.shown_url)!r}"
    databases = [value for key, value in parse_qsl(parts.query) if key == "db"]
    if parts.scheme == "unix":
        if not parts.path:
            return [f"{where}: the socket's path is missing, as in unix:///run/redis/redis.sock"]
    else:
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            return [f"{where}: the port must be a number from 1 to 65535, as in redis://127.0.0.1:6379/0"]
        if parts.path not in ("", "/"):
            databases.append(parts.path[1:])
    if not all(DATABASE.fullmatch(database) for database in databases):
        return [f"{where}: the database must be a number (0, 1, ...), as in redis://127.0.0.1:6379/0"]
    return []


def ban_log_path(filename: str, log_dir: str) -> str:
    """The ban log ``filename`` names: a relative name is relative to FreeSWITCH's log_dir."""
    return filename if os.path.isabs(filename) else os.path.join(log_dir, filename)


def _metrics(values: Optional[Mapping[str, Any]]) -> Tuple[Optional[MetricsSettings], List[str]]:
    if values is None:
        return None, []
    listen = values.get("listen", DEFAULT_METRICS_LISTEN)
    settings = parse_listen(listen)
    if settings is None:
        return None, [f"fail2ban.metrics.listen: {escape(listen)!r} is not HOST:PORT (an IP address and a port, "
                      f"e.g. {DEFAULT_METRICS_LISTEN})"]
    if importlib.util.find_spec("prometheus_client") is None:
        return None, [f"fail2ban.metrics: needs the prometheus_client library, which is not installed: {METRICS_EXTRA}"]
    return settings, []


def compile_config(section: Mapping[str, Any], source: Optional[str]) -> Config:
    """Compile a validated ``fail2ban`` object; raises ConfigError for semantic errors."""
    merged = {**DEFAULTS, **section}
    networks, errors = _networks(merged["trusted_networks"])
    limits, limit_errors = compile_limits(section)
    errors += limit_errors
    cluster, cluster_errors = _cluster(section.get("cluster"))
    errors += cluster_errors
    metrics, metrics_errors = _metrics(section.get("metrics"))
    errors += metrics_errors
    overrides = section.get("contexts", {})
    errors += _destination_errors(section, merged, "fail2ban")
    errors += _limit_destination_errors(limits, merged, overrides)
    for name, override in overrides.items():
        errors += _destination_errors(override, _context_values(merged, override), f"fail2ban.contexts.{name}")
    if errors:
        raise ConfigError(source or "<built-in>", errors)
    base = _rules(merged)
    contexts = {name: _rules(_context_values(merged, override)) for name, override in overrides.items()}
    filename = merged["filename"]
    return Config(
        base=base,
        contexts=contexts,
        ban_log_path=ban_log_path(filename, host.log_dir()),
        trusted_networks=networks,
        on_error=merged["on_error"],
        source=source,
        raw=dict(section),
        limits=limits,
        cluster=cluster,
        metrics=metrics,
    )


def parse_config(text: Union[str, bytes], source: str) -> Config:
    """Validate and compile the text of a configuration file."""
    twice: List[Tuple[dict, str]] = []  # (object, key) for each key an object holds more than once
    try:
        document = json.loads(text, object_pairs_hook=lambda pairs: _object(pairs, twice))
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except ValueError as exc:
        raise ConfigError(source, [f"not valid JSON: {exc}"]) from None
    errors = _duplicate_errors(document, twice) + _schema_errors(document)
    if errors:
        raise ConfigError(source, errors)
    return compile_config(document["fail2ban"], source)


def _object(pairs: List[Tuple[str, Any]], twice: List[Tuple[dict, str]]) -> dict:
    """A JSON object; a key it holds twice is noted (json.loads keeps the last silently)."""
    made = dict(pairs)
    if len(made) < len(pairs):
        seen: set = set()
        twice.extend((made, key) for key, _ in pairs if key in seen or seen.add(key))
    return made


def _duplicate_errors(document: Any, twice: List[Tuple[dict, str]]) -> List[str]:
    """Each key given twice in the ``fail2ban`` object, by its path: with the last one winning, a
    typo could switch a rule off. Other sections (a mod_cti ``cti.json``'s) are not fs-guard's."""
    if not twice or not isinstance(document, dict):
        return []
    paths = {id(document): ()}
    pending: List[Any] = [(document, ())]
    while pending:
        value, path = pending.pop()
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in children:
            if isinstance(child, (dict, list)):
                paths[id(child)] = path + (key,)
                pending.append((child, path + (key,)))
    errors = []
    for made, key in twice:
        where = paths.get(id(made))  # None: inside a value dropped for a later one, reported itself
        if where is not None and (where + (key,))[0] == "fail2ban":
            errors.append(f"{_path_of(where + (key,))}: given twice (JSON keeps only the last one: remove the other)")
    return errors


def load_config(path: str) -> Config:
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(path, [f"cannot read: {exc.strerror or exc}"]) from None
    return parse_config(text, path)


def default_config() -> Config:
    return compile_config({}, None)


@dataclass(frozen=True)
class Location:
    """Where the configuration file is, and what named it."""

    path: str
    named_by: Optional[str]  # FS_GUARD_CONFIG or fs_guard_config; None: the usual <conf_dir>/fs_guard.json

    def missing(self) -> Optional[str]:
        """Why a missing file is an error, or None when it means the built-in defaults: a
        path named on purpose that does not exist is a typo, not a wish for the defaults."""
        if self.named_by is None:
            return None
        return f"no such file (named by {self.named_by})"


def locate_config() -> Location:
    """The configuration file to use: FS_GUARD_CONFIG, then fs_guard_config, then conf_dir."""
    named = host.environment_config_path()
    if named:
        return Location(named, "the environment variable FS_GUARD_CONFIG")
    named = host.global_variable("fs_guard_config")
    if named:
        return Location(named, "the FreeSWITCH global variable fs_guard_config")
    return Location(os.path.join(host.conf_dir(), CONFIG_BASENAME), None)


Signature = Optional[Tuple[int, int, int, int]]


def _signature(path: str) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True)
class LoadState:
    """What ``fs_guard.status`` shows about the configuration in force."""

    config: Config
    path: str
    loaded_at: Optional[float]  # when ``config`` was loaded; None for the built-in defaults
    last_error: Optional[str]
    error_at: Optional[float]


#: How long a call that arrives while the first configuration load is still running (it
#: imports jsonschema: tens of ms) waits for it before it is decided with the built-in
#: defaults instead (and counted in ``ConfigStore.first_load_timeouts``).
FIRST_LOAD_WAIT = 2.0


class ConfigStore:
    """The configuration in force, re-read only when its file changes.

    ``current()`` costs one ``stat`` when nothing changed. A file that fails to load is
    remembered by its signature, so a bad file is parsed (and logged) once, not per call.
    Calls that arrive during the very first load wait for it (at most FIRST_LOAD_WAIT), so
    none is decided with the built-in defaults while the operator's file is being read;
    during a later reload they go on with the last good configuration.
    """

    def __init__(self, path: Optional[str] = None) -> None:
        self._fixed = Location(path, "the caller") if path else None
        self._lock = threading.Lock()
        self._path = path or ""
        self._location = self._fixed or Location("", None)
        self._seen: object = object()  # signature last looked at; matches nothing at first
        self._state = LoadState(default_config(), self._path, None, None, None)
        self._first_pending = True  # until the first look at the file has finished
        self._first_done = threading.Event()
        self._count_lock = threading.Lock()
        self.first_load_timeouts = 0
        self.loads = 0  # files loaded
        self.load_errors = 0  # files (or their absence) that did not take effect

    @property
    def state(self) -> LoadState:
        return self._state

    def current(self) -> Config:
        path = self._path or self._locate()
        if _signature(path) != self._seen:
            self._refresh(force=False)
        if self._first_pending:
            self._await_first_load()
        return self._state.config

    def _await_first_load(self) -> None:
        if not self._first_done.wait(FIRST_LOAD_WAIT):
            with self._count_lock:
                self.first_load_timeouts += 1
            host.console("warning", f"fs-guard: the first configuration load is taking over {FIRST_LOAD_WAIT:g} s; "
                         "this call is decided with the built-in defaults")

    def _locate(self) -> str:
        location = self._fixed or locate_config()
        self._path, self._location = location.path, location
        return self._path

    def preload(self) -> Config:
        """Load the file now if there is one (the event hook, when FreeSWITCH starts), so that
        it is read, and the cluster it names connected, before calls come. With no file yet,
        nothing: the call that first finds one loads it, and the calls meanwhile wait for it;
        but a file named by FS_GUARD_CONFIG or fs_guard_config that is missing is reported now."""
        if os.path.exists(self._path or self._locate()) or self._location.missing():
            return self.current()
        return self._state.config

    def reload(self) -> LoadState:
        """Find the file again and load it even if it looks unchanged."""
        with self._lock:
            self._locate()
        self._refresh(force=True)
        return self._state

    def _refresh(self, force: bool) -> None:
        # While another thread runs the first load, a call does not queue on the lock:
        # current() waits for that load, at most FIRST_LOAD_WAIT.
        if not self._lock.acquire(blocking=force or not self._first_pending):
            return
        try:
            self._load(force)
        finally:
            if self._first_pending:
                self._first_pending = False
                self._first_done.set()
            self._lock.release()

    def _load(self, force: bool) -> None:
        path = self._path
        signature = _signature(path)
        if signature == self._seen and not force:
            return
        self._seen = signature
        previous = self._state
        kept = f"keeping the {'last good' if previous.loaded_at else 'built-in'} configuration"
        if signature is None:
            named = self._location.missing()
            if named:
                self._fail(previous, f"{path}: {named}; {kept}")
                return
            if previous.loaded_at is None and previous.last_error is None and not force:
                return  # no file has ever existed: the built-in defaults are right
            self._fail(previous, f"{path}: missing; {kept}")
            return
        try:
            config = load_config(path)
        except ConfigError as exc:
            self._fail(previous, f"{exc}; {kept}")
            return
        except Exception as exc:  # never let a loader bug take the screen down with it
            self._fail(previous, f"{path}: cannot load ({type(exc).__name__}: {exc}); {kept}")
            return
        self._state = LoadState(config, path, time.time(), None, None)
        self.loads += 1
        host.console("notice", f"fs-guard: loaded configuration {_printable(path)}")

    def _fail(self, previous: LoadState, error: str) -> None:
        self._state = LoadState(previous.config, previous.path, previous.loaded_at, error, time.time())
        self.load_errors += 1
        host.console("err", f"fs-guard: configuration error: {_printable(error)}")


def _printable(text: str) -> str:
    return escape(text, limit=4096)
