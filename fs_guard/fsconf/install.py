"""``fs-guard install`` and ``uninstall``: put the bundle in place, prove it, undo it.

Install first plans: every edit is made in memory, over the files on disk, and the
result is preprocessed again as FreeSWITCH would read it. Only when that proves the
screen is the first action of each context, mod_python3 is loaded and the events hook
starts, is anything written (or, with --dry-run, shown as a diff).

It also makes fs-guard importable where mod_python3 imports it, without touching the
distribution's Python: fs-guard and its dependencies, built for the Python mod_python3.so
is linked against, go into FreeSWITCH's script directory (``fs_guard.fsconf.payload``),
or, with ``--check-import``, install only proves that Python imports it already.

What install did is kept under ``<conf_dir>/.fs-guard/``: a manifest, a backup of every
file as it was before (``backups/``) and as install left it (``installed/``). Uninstall
restores each edited file byte for byte and removes each file install created, as long
as nobody changed it since; a file edited since is reverted edit by edit, or kept (with
its backup) when that is not possible.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from fs_guard.fsconf import bundle, country, fsmodel, fsxml, live, modpython, payload, selinux, xmledit
from fs_guard.fsconf.live import FS_CLI

from fs_guard.runtime import host
from fs_guard.runtime.config import CONFIG_BASENAME, DEFAULT_FILENAME, ConfigError, ban_log_path, parse_config

STATE_DIR = ".fs-guard"
MANIFEST = "manifest.json"
SCREEN_FILE = "dialplan/fs_guard/screen.xml"  # in the bundle and under conf_dir alike
PYTHON_CONF_FILE = "autoload_configs/python.conf.xml"
JAIL_FILE = "jail.d/fs-guard.conf"
FILTER_FILE = "filter.d/fs-guard.conf"
DEFAULT_CONTEXTS = ("public", "default")
DEFAULT_FAIL2BAN_DIR = "/etc/fail2ban"
LOAD_PYTHON = '<load module="mod_python3"/>'
STARTUP_SCRIPT = f'<param name="startup-script" value="{fsmodel.EVENTS_MODULE}"/>'
#: Manifest group of the files of fs-guard's Python packages in the script directory.
PYTHON_GROUP = "python"
_LOAD_PYTHON = re.compile(r'<load\s+module\s*=\s*"mod_python3"\s*/>')
#: The shipped configuration's home region (the value install fills in).
_REGION = re.compile(r'("dialling"\s*:\s*\{\s*"region"\s*:\s*)"[^"]*"')
_LOGPATH = re.compile(r"^(logpath[ \t]*=[ \t]*)[^\n]*\n(?:[ \t]+[^\n]*\n)*", re.MULTILINE)


class InstallError(Exception):
    """Install cannot do its job on this configuration; nothing was changed."""


@dataclass(frozen=True)
class Change:
    """One file as it is (None: absent) and as it will be (None: removed)."""

    path: str
    before: Optional[bytes]
    after: Optional[bytes]
    why: str
    mode: int = 0o644  # for a file that is created
    group: str = ""  # "": a configuration file, shown as a diff; PYTHON_GROUP: one of many, summed up


@dataclass(frozen=True)
class Plan:
    conf_dir: str
    changes: Tuple[Change, ...]
    notes: Tuple[str, ...]  # what the operator should know
    next_steps: Tuple[str, ...]
    kept: Tuple[str, ...] = ()  # uninstall: edited files it could not restore, and why
    log_dir: Optional[str] = None  # install: the --log-dir given, kept for resolve_log_dir


def _sha(data: Optional[bytes]) -> Optional[str]:
    return hashlib.sha256(data).hexdigest() if data is not None else None


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")  # edits keep every byte they do not touch


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _read(path: str) -> Optional[bytes]:
    """A file's bytes, None when there is no such file (a permission error is raised)."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


class Overlay:
    """The disk as it would be after the planned writes (an ``fsxml.Source``)."""

    def __init__(self) -> None:
        self._pending: Dict[str, Optional[bytes]] = {}  # None: to be removed
        self._why: Dict[str, List[str]] = {}
        self._modes: Dict[str, int] = {}
        self._groups: Dict[str, str] = {}

    def read_bytes(self, path: str) -> Optional[bytes]:
        return self._pending[path] if path in self._pending else _read(path)

    def read(self, path: str) -> Optional[str]:
        data = self.read_bytes(path)
        return data.decode("utf-8", "replace") if data is not None else None

    def glob(self, pattern: str) -> List[str]:
        found = set(fsxml.DISK.glob(pattern))
        depth = pattern.count(os.sep)
        for path in self._pending:
            hidden = os.path.basename(path).startswith(".") and not os.path.basename(pattern).startswith(".")
            if path.count(os.sep) == depth and not hidden and fnmatch.fnmatchcase(path, pattern):
                found.add(path)
        return sorted(found)

    def put(self, path: str, data: Optional[bytes], why: str, mode: int = 0o644, group: str = "") -> None:
        """Plan ``path`` to hold ``data`` (None: to be removed); nothing is planned when it already does."""
        if self.read_bytes(path) == data:
            return
        self._pending[path] = data
        self._why.setdefault(path, []).append(why)
        self._modes.setdefault(path, mode)
        self._groups.setdefault(path, group)

    def edit(self, path: str, text: str, why: str) -> None:
        self.put(path, _bytes(text), why)

    def text_of(self, path: str) -> str:
        data = self.read_bytes(path)
        if data is None:
            raise InstallError(f"{path}: cannot read")
        return _text(data)

    def changes(self) -> Tuple[Change, ...]:
        found = []
        for path, data in self._pending.items():
            before = _read(path)
            if before != data:
                why = "; ".join(self._why[path])
                found.append(Change(path, before, data, why, self._modes[path], self._groups[path]))
        return tuple(found)


# -- planning an install ----------------------------------------------------------------


#: Seconds to wait for fs_cli: a FreeSWITCH that is not running must not stall install.
FS_CLI_TIMEOUT = live.FS_CLI_TIMEOUT


def ask_freeswitch(name: str) -> Optional[str]:
    """A global variable of the running FreeSWITCH, as an absolute path; None unanswered."""
    return live.FsCli(timeout=FS_CLI_TIMEOUT).global_path(name)


class RunningFreeSwitch:
    """The FreeSWITCH running on one configuration directory, each variable asked once.

    Another FreeSWITCH's directories are not this configuration's: when the running one
    reads another conf_dir (or none answers), every answer is None and ``why_not`` says so.
    """

    def __init__(self, conf_dir: str) -> None:
        self.conf_dir = os.path.abspath(conf_dir)
        self._answers: Dict[str, Optional[str]] = {}
        self.why_not = ""

    def _ask(self, name: str) -> Optional[str]:
        if name not in self._answers:
            self._answers[name] = ask_freeswitch(name)
        return self._answers[name]

    def get(self, name: str) -> Optional[str]:
        running_conf = self._ask("conf_dir")
        if running_conf is None:
            return None
        if os.path.realpath(running_conf) != os.path.realpath(self.conf_dir):
            self.why_not = f"the running FreeSWITCH reads {running_conf}, not this configuration: its directories are not used"
            return None
        return self._ask(name)


def _layout_log_dir(conf_dir: str, variables: Mapping[str, str]) -> Tuple[str, str]:
    """log_dir as FreeSWITCH would set it for a configuration where it is not running."""
    if variables.get("log_dir"):
        return variables["log_dir"], "log_dir is set in vars.xml"
    etc = os.path.dirname(conf_dir)
    prefix = os.path.dirname(etc)
    under_prefix = os.path.join(prefix, "var", "log", "freeswitch")
    if (
        os.path.basename(conf_dir) == "freeswitch"
        and os.path.basename(etc) == "etc"
        and os.path.dirname(prefix) != prefix  # /etc/freeswitch: the packaged default below
        and os.path.isdir(under_prefix)
    ):
        return under_prefix, f"source-build layout under {prefix} (etc/freeswitch, var/log/freeswitch)"
    sibling = os.path.join(etc, "log")
    if os.path.basename(conf_dir) == "conf" and os.path.isdir(sibling):
        return sibling, f"older source-build layout ({conf_dir} next to {sibling})"
    return host.DEFAULT_LOG_DIR, "the packaged FreeSWITCH default"


def guess_log_dir(
    conf_dir: str, variables: Mapping[str, str], running: Optional[RunningFreeSwitch] = None
) -> Tuple[str, str]:
    """FreeSWITCH's log_dir as fs-guard will see it, and how it was found.

    FreeSWITCH takes its log directory from its -log option or its build prefix, not
    from XML; fs-guard reads the global variable log_dir, which vars.xml may override.
    So the running FreeSWITCH is asked first, when it runs on this configuration.
    """
    conf_dir = os.path.abspath(conf_dir)
    running = running or RunningFreeSwitch(conf_dir)
    answer = running.get("log_dir")
    if answer is not None:
        return answer, _answered("log_dir")
    log_dir, how = _layout_log_dir(conf_dir, variables)
    return log_dir, f"{how}; {running.why_not}" if running.why_not else how


def _answered(name: str) -> str:
    return f'the running FreeSWITCH answered {FS_CLI} -x "global_getvar {name}"'


def resolve_log_dir(
    conf_dir: str, explicit: Optional[str] = None, variables: Optional[Callable[[], Mapping[str, str]]] = None,
    running: Optional[RunningFreeSwitch] = None,
) -> Tuple[str, str]:
    """FreeSWITCH's log_dir for the configuration in ``conf_dir``, and how it was found.

    ``--log-dir`` when given; else the ``--log-dir`` the last install was given (kept in
    its manifest); else guess_log_dir. install, audit, check-config and test all ask this,
    so the ban log they name is the same file. ``variables`` reads vars.xml's (by default,
    by loading ``conf_dir``).
    """
    if explicit:
        return explicit, "--log-dir"
    try:
        manifest = load_manifest(conf_dir)
    except InstallError:
        manifest = None  # install and uninstall say it is damaged; here it only tells nothing
    if manifest is not None and manifest.log_dir:
        return manifest.log_dir, f"given to fs-guard install --log-dir, kept in {STATE_DIR}/{MANIFEST}"
    return guess_log_dir(conf_dir, variables() if variables else _variables(conf_dir), running)


def _variables(conf_dir: str) -> Mapping[str, str]:
    try:
        return fsmodel.load(conf_dir).variables
    except fsmodel.NotFreeSwitch:
        return {}


@dataclass(frozen=True)
class BanLogPlace:
    """Where a configuration's ban log is, and how that was found."""

    path: str
    how: str  # "" for an absolute filename

    def __str__(self) -> str:
        return f"{self.path} ({self.how})" if self.how else self.path

    @property
    def missing_directory(self) -> Optional[str]:
        """The ban log's directory when it does not exist (no line can be written), else None."""
        directory = os.path.dirname(self.path)
        return None if os.path.isdir(directory) else directory


def ban_log_place(
    filename: str, conf_dir: str, log_dir: Optional[str] = None,
    variables: Optional[Callable[[], Mapping[str, str]]] = None, running: Optional[RunningFreeSwitch] = None,
) -> BanLogPlace:
    """The ban log a configuration's ``filename`` names: relative ones in resolve_log_dir's directory."""
    if os.path.isabs(filename):
        return BanLogPlace(filename, "")
    log_dir, how = resolve_log_dir(conf_dir, log_dir, variables, running)
    return BanLogPlace(ban_log_path(filename, log_dir), f"log_dir {log_dir}: {how}")


def set_logpath(jail: str, path: str) -> str:
    value = path.replace("%", "%%")  # fail2ban interpolates %(name)s in values
    new, count = _LOGPATH.subn(lambda m: f"{m.group(1)}{value}\n", jail, count=1)
    if not count:
        raise InstallError(f"the shipped jail {JAIL_FILE} has no logpath line")
    return new


def set_region(config: bytes, region: str) -> bytes:
    """The shipped configuration with ``region`` as its ``dialling.region`` (its text otherwise kept)."""
    new, count = _REGION.subn(lambda m: f'{m.group(1)}"{region}"', _text(config), count=1)
    if not count:
        raise InstallError(f"the shipped {CONFIG_BASENAME} has no dialling.region")
    return _bytes(new)


def _region_notes(existing: bytes, path: str, explicit: Optional[str], variables: Mapping[str, str]) -> List[str]:
    """What an operator's own configuration says of the home region, beside FreeSWITCH's."""
    try:
        regions = country.configured_regions(parse_config(existing, path).raw)
    except ConfigError:
        return []  # _ban_log_filename says it is not valid
    freeswitch = country.default_country(variables)
    notes = [f"{path}: {country.difference(where, code, freeswitch)}"
             for where, code in country.differences(regions, freeswitch) if freeswitch is not None]
    if explicit is not None:
        notes.append(f"--region {explicit} is not applied: install never changes your configuration {path} "
                     f"(its dialling.region: {regions.get('') or 'none'}); set dialling.region there")
    return notes


def _ban_log_filename(config_data: bytes, config_path: str, notes: List[str]) -> str:
    try:
        return parse_config(config_data, config_path).raw.get("filename", DEFAULT_FILENAME)
    except ConfigError as exc:
        notes.append(
            f"{config_path} is not a valid configuration ({'; '.join(exc.errors)}): fs-guard uses its "
            f"built-in rules until you fix it (fs-guard check-config --config {config_path})"
        )
    return DEFAULT_FILENAME


@dataclass(frozen=True)
class PythonTarget:
    """How install makes fs-guard importable by the Python mod_python3 runs."""

    place: bool = True  # put fs-guard and its dependencies into the script directory; False: only check
    python: Optional[str] = None  # that interpreter (default: the one mod_python3.so is linked against)
    script_dir: Optional[str] = None  # default: the running FreeSWITCH's, else the layout's
    mod_dir: Optional[str] = None  # where mod_python3.so is (same defaults)
    package: Optional[str] = None  # what pip installs (default: payload.requirement)
    wheels: Optional[str] = None  # install from the wheels in this directory only, no index


class _Installer:
    """One install plan being built."""

    def __init__(self, conf_dir: str, contexts: Sequence[str]) -> None:
        self.conf_dir = os.path.abspath(conf_dir)
        self.contexts = tuple(contexts)
        self.overlay = Overlay()
        self.notes: List[str] = []
        self.running = RunningFreeSwitch(self.conf_dir)

    def load(self) -> fsmodel.FsConfig:
        return fsmodel.load(self.conf_dir, self.overlay)

    def screen(self) -> None:
        screen_path = os.path.join(self.conf_dir, *SCREEN_FILE.split("/"))
        self.overlay.put(screen_path, bundle.read(bundle.FREESWITCH, SCREEN_FILE), "the screen extension")
        for name in self.contexts:
            context = self.load().context(name)
            if context is None:
                raise InstallError(f'no <context name="{name}"> in the dialplan of {self.conf_dir}')
            if fsmodel.screen_runs_first(context):
                continue
            where = context.start.path
            include = os.path.relpath(screen_path, os.path.dirname(where)).replace(os.sep, "/")
            line = f'<X-PRE-PROCESS cmd="include" data="{include}"/>'
            try:
                text = xmledit.insert_after_start_tag(
                    self.overlay.text_of(where), context.start.line, xmledit.start_tag("context", name), line
                )
            except xmledit.EditError as exc:
                raise InstallError(f"{context.start}: cannot add the screen to context {name}: {exc}") from None
            self.overlay.edit(where, text, f"run fs_guard.screen first in context {name}")

    def python_module(self) -> None:
        config = self.load()
        modules = config.configuration("modules.conf")
        section = modules.find("modules") if modules is not None else None
        if section is None:
            raise InstallError(f"no <configuration name=\"modules.conf\"> with <modules> in {self.conf_dir}")
        if fsmodel.PYTHON_MODULE in fsmodel.loaded_modules(config):
            return
        where = section.start.path
        text = self.overlay.text_of(where)
        edited = xmledit.uncomment_line(text, _LOAD_PYTHON)
        if edited is None:
            edited = xmledit.insert_child(text, section.start.line, section.end.line, "modules", LOAD_PYTHON)
        self.overlay.edit(where, edited, "load mod_python3")

    def events_hook(self) -> None:
        config = self.load()
        if fsmodel.runs_events_hook(config):
            return
        python = config.configuration("python.conf")
        if python is None:
            modules = config.configuration("modules.conf")
            target = os.path.join(os.path.dirname(modules.start.path), os.path.basename(PYTHON_CONF_FILE))
            if self.overlay.read_bytes(target) is not None:
                raise InstallError(f'{target} exists but defines no <configuration name="python.conf">')
            self.overlay.put(target, bundle.read(bundle.FREESWITCH, PYTHON_CONF_FILE), "start fs_guard.events")
            return
        settings = python.find("settings")
        where = (settings if settings is not None else python).start.path
        text = self.overlay.text_of(where)
        if settings is None:
            edited = xmledit.insert_child(
                text, python.start.line, python.end.line, "configuration", f"<settings>{STARTUP_SCRIPT}</settings>"
            )
        else:
            edited = xmledit.insert_child(text, settings.start.line, settings.end.line, "settings", STARTUP_SCRIPT)
        self.overlay.edit(where, edited, "start fs_guard.events")

    def config_file(self, region: Optional[str] = None) -> Tuple[str, bytes]:
        """fs-guard's configuration (the operator's when there is one): path and content. The
        shipped one gets the home region: ``region`` (``--region``), else vars.xml's default_country."""
        variables = self.load().variables
        path = variables.get("fs_guard_config") or os.path.join(self.conf_dir, CONFIG_BASENAME)
        existing = _read(path)
        if existing is not None:
            self.notes.append(f"kept your configuration {path} (install never overwrites it)")
            self.notes += _region_notes(existing, path, region, variables)
            return path, existing
        home = self.home_region(region)
        shipped = set_region(bundle.read(bundle.FREESWITCH, CONFIG_BASENAME), home.code)
        self.overlay.put(path, shipped, f"fs-guard's configuration with the shipped rules (home region {home.code})")
        self.notes.append(f"home region {home.code} ({home.how}) written to {path} as dialling.region: numbers "
                          f"in national format and emergency numbers are read as {home.code}'s (--region overrides it)")
        return path, shipped

    def home_region(self, explicit: Optional[str]) -> country.Region:
        """The region the shipped configuration gets: ``--region``, else FreeSWITCH's default_country."""
        if explicit is not None:
            found = country.of(explicit, "--region")
        else:
            config = self.load()
            origin = config.doc.set_at.get(country.VARIABLE)
            found = country.default_country(config.variables, _shown(self.conf_dir, origin) if origin else "")
        if found is None:
            raise InstallError(
                f"{'--region is empty' if explicit is not None else 'vars.xml sets no default_country'}, and the "
                "shipped rules need your country (dialling.region: how numbers in national format and emergency "
                "numbers are read): pass --region with its ISO 3166 code (GB, US, DE, ...); nothing was changed")
        if not found.usable:
            raise InstallError(f"{found.problem} (pass --region with your country's ISO 3166 code); nothing was changed")
        return found

    def fail2ban(self, directory: str, explicit: bool, ban_log: str) -> None:
        if not os.path.isdir(directory):
            if explicit:
                raise InstallError(f"--fail2ban-dir {directory}: no such directory")
            self.notes.append(f"no fail2ban in {directory}: jail not installed (install fail2ban, or pass --fail2ban-dir)")
            return
        self.overlay.put(
            os.path.join(directory, *FILTER_FILE.split("/")), bundle.read(bundle.FAIL2BAN, FILTER_FILE), "fail2ban filter"
        )
        jail = set_logpath(_text(bundle.read(bundle.FAIL2BAN, JAIL_FILE)), ban_log)
        self.overlay.put(
            os.path.join(directory, *JAIL_FILE.split("/")), _bytes(jail), f"fail2ban jail reading {ban_log}"
        )
        if os.path.exists(ban_log):
            return
        if os.path.isdir(os.path.dirname(ban_log)):
            # fail2ban 1.0.x will not start at all while a jail's log file is missing
            self.overlay.put(ban_log, b"", "empty ban log, so that fail2ban starts", mode=0o640)
        else:
            self.notes.append(
                f"{os.path.dirname(ban_log)} does not exist: is it FreeSWITCH's log_dir? "
                f"(fs_cli -x 'global_getvar log_dir'; pass --log-dir)"
            )

    def python(self, target: PythonTarget) -> None:
        """fs-guard where mod_python3 imports it: placed in the script directory, or checked there."""
        script_dir, mod_dirs, how = self._python_dirs(target)
        try:
            linked = modpython.linked_python(mod_dirs, target.python)
        except modpython.PythonNotFound as exc:
            raise InstallError(f"{exc}; nothing was changed") from None
        self.notes.append(f"mod_python3 runs {linked.describe()}; its script directory is {script_dir} ({how})")
        try:
            if target.place:
                self._place_python(linked, script_dir, target)
                return
            problem = payload.probe(linked.interpreter, script_dir).problem()
        except payload.PayloadError as exc:
            raise InstallError(f"{exc}; nothing was changed") from None
        if problem:
            raise InstallError(
                f"{linked.interpreter}, with {script_dir} first on sys.path as mod_python3 runs it, would not run "
                f"fs-guard: {problem}. Every call would go through unscreened. Run install without --check-import "
                "to put fs-guard there; nothing was changed"
            )

    def _python_dirs(self, target: PythonTarget) -> Tuple[str, Tuple[str, ...], str]:
        layout = modpython.layout(self.conf_dir)
        if target.script_dir:
            script_dir, how = os.path.abspath(target.script_dir), "--script-dir"
        elif self.running.get("script_dir"):
            script_dir, how = self.running.get("script_dir"), _answered("script_dir")
        else:
            script_dir, how = layout.script_dir, layout.how
        answered = self.running.get("mod_dir")
        mod_dirs = (target.mod_dir,) if target.mod_dir else (answered,) if answered else layout.mod_dirs
        return script_dir, mod_dirs, how

    def _place_python(self, linked: modpython.LinkedPython, script_dir: str, target: PythonTarget) -> None:
        if not os.path.isdir(script_dir):
            raise InstallError(
                f"FreeSWITCH's script directory {script_dir} does not exist: is FreeSWITCH installed here? "
                f"(fs_cli -x \"global_getvar script_dir\"; pass --script-dir); nothing was changed"
            )
        wanted = payload.requirement(target.package, target.wheels)
        with tempfile.TemporaryDirectory(prefix="fs-guard-stage-") as staging:
            payload.stage(linked.interpreter, wanted, target.wheels, staging, script_dir)
            probe = payload.probe(linked.interpreter, staging)
            problem = probe.problem() or (
                None if (probe.file or "").startswith(staging + os.sep) else f"fs_guard came from {probe.file}, not from {wanted}"
            )
            if problem:
                raise InstallError(f"{wanted}, installed by pip for {linked.interpreter}, does not run there: {problem}")
            why = f"{payload.contents(staging)} for Python {linked.version}"
            self._copy_in(staging, script_dir, why)
        self.notes.append(f"Python packages: {why}, in {script_dir} (imported there before the system's)")

    def _copy_in(self, staging: str, script_dir: str, why: str) -> None:
        """Plan the staged files into the script directory; files an older install put there and
        this one does not are removed."""
        manifest = load_manifest(self.conf_dir) or Manifest((), ())
        ours = {e.path for e in manifest.entries if e.group == PYTHON_GROUP}
        staged = {os.path.join(script_dir, *relative.split("/")): full for relative, full in payload.files(staging)}
        placed = list(staged)
        _refuse_foreign(staging, script_dir, placed, ours, manifest.created_dirs)
        for path, full in staged.items():
            mode = 0o755 if os.stat(full).st_mode & 0o111 else 0o644
            with open(full, "rb") as handle:
                self.overlay.put(path, handle.read(), why, mode, PYTHON_GROUP)
        for path in sorted(ours - set(placed)):
            self.overlay.put(path, None, "no longer part of fs-guard's Python packages", group=PYTHON_GROUP)

    def verify(self) -> None:
        config = self.load()
        problems = [
            f"fs_guard.screen would not be the first action of context {name}"
            for name in self.contexts
            if not fsmodel.screen_runs_first(config.context(name))
        ]
        if fsmodel.PYTHON_MODULE not in fsmodel.loaded_modules(config):
            problems.append("mod_python3 would not be loaded")
        if not fsmodel.runs_events_hook(config):
            problems.append(f"{fsmodel.EVENTS_MODULE} would not be started")
        if problems:
            raise InstallError("; ".join(problems) + ": nothing was changed")
        for name in self.contexts:
            extra = [a for a in config.context(name).iter() if a.tag == "action" and fsmodel.is_screen(a)][1:]
            self.notes.extend(
                f"{a.start}: context {name} runs fs_guard.screen a second time here: remove it" for a in extra
            )


def _refuse_foreign(
    staging: str, script_dir: str, placed: Sequence[str], ours: "set[str]", created_dirs: Sequence[str]
) -> None:
    """Another copy of a package fs-guard brings (an earlier pip install by hand) would mix with it."""
    dirs = [
        name + "/" for name in sorted(os.listdir(staging))
        if name != "__pycache__" and os.path.isdir(os.path.join(script_dir, name))
        and os.path.join(script_dir, name) not in created_dirs
    ]
    files = [
        os.path.relpath(p, script_dir) for p in placed
        if p not in ours and os.path.lexists(p) and not os.path.relpath(p, script_dir).startswith(tuple(dirs))
    ]
    foreign = dirs + files
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise InstallError(
            f"{script_dir} already holds {shown}, not put there by fs-guard install: fs-guard's packages would mix "
            "with them. Move them out of the script directory (or, if they are a working fs-guard you installed "
            "yourself, pass --check-import); nothing was changed"
        )


def _shown(conf_dir: str, origin: fsxml.Origin) -> str:
    return f"{fsmodel.shown_path(conf_dir, origin.path)}:{origin.line}"


def ban_log_of(conf_dir: str) -> Tuple[str, str, List[str]]:
    """The ban log fs-guard writes for ``conf_dir`` (install's choice): path, how log_dir was found, notes."""
    work = _Installer(conf_dir, ())
    config_path = work.load().variables.get("fs_guard_config") or os.path.join(work.conf_dir, CONFIG_BASENAME)
    config_data = _read(config_path) or bundle.read(bundle.FREESWITCH, CONFIG_BASENAME)
    ban_log, notes = _ban_log(work, config_path, config_data, None)
    return ban_log.path, ban_log.how, notes


def _ban_log(
    work: "_Installer", config_path: str, config_data: bytes, log_dir: Optional[str]
) -> Tuple[BanLogPlace, List[str]]:
    notes: List[str] = []
    filename = _ban_log_filename(config_data, config_path, notes)
    return ban_log_place(filename, work.conf_dir, log_dir, lambda: work.load().variables, work.running), notes


def plan_install(
    conf_dir: str,
    fail2ban_dir: Optional[str] = None,
    log_dir: Optional[str] = None,
    contexts: Sequence[str] = DEFAULT_CONTEXTS,
    python: PythonTarget = PythonTarget(),
    host: selinux.Host = selinux.Host(),
    region: Optional[str] = None,
) -> Plan:
    """What install would change; raises NotFreeSwitch, InstallError or BundleMissing.
    ``region``: the home region for the shipped configuration (default: vars.xml's default_country)."""
    log_dir = os.path.abspath(log_dir) if log_dir else None  # kept in the manifest, read from anywhere
    work = _Installer(conf_dir, contexts)
    work.screen()
    work.python_module()
    work.events_hook()
    config_path, config_data = work.config_file(region)
    ban_log, notes = _ban_log(work, config_path, config_data, log_dir)
    work.notes += notes + [f"ban log: {ban_log}"]
    work.fail2ban(fail2ban_dir or DEFAULT_FAIL2BAN_DIR, fail2ban_dir is not None, ban_log.path)
    verdict = selinux.ban_log_verdict(ban_log.path, host)
    if verdict is not None:
        work.notes.append(verdict.message + "".join(f"\n    {command}" for command in verdict.commands))
    work.verify()
    work.python(python)
    changes = work.overlay.changes()
    steps = _next_steps(changes, work.conf_dir, verdict.commands if verdict else ())
    return Plan(work.conf_dir, changes, tuple(work.notes), steps, log_dir=log_dir)


def _next_steps(changes: Sequence[Change], conf_dir: str, selinux_fix: Sequence[str]) -> Tuple[str, ...]:
    steps = [(command, "SELinux: let fail2ban read the ban log") for command in selinux_fix]
    if not changes and not steps:
        return ()
    why = " ".join(change.why for change in changes)
    steps.append(('fs_cli -x "reloadxml"', "read the new dialplan and configuration"))
    if "mod_python3" in why or fsmodel.EVENTS_MODULE in why:
        steps.append(('fs_cli -x "load mod_python3"', "starts fs_guard.events (already loaded: restart FreeSWITCH)"))
    elif any(change.group == PYTHON_GROUP for change in changes):
        steps.append(("systemctl restart freeswitch", "a running FreeSWITCH keeps the fs-guard it imported"))
    if "fail2ban" in why:
        steps.append(("systemctl restart fail2ban", "or: fail2ban-client reload"))
    steps.append((f"fs-guard audit --conf-dir {conf_dir}", "no finding about fs-guard should be left"))
    width = max(len(command) for command, _ in steps)
    return tuple(f"{command.ljust(width)}   # {comment}" for command, comment in steps)


# -- the manifest ---------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A file install wrote: where its original is kept (None: it did not exist)."""

    path: str
    backup: Optional[str]
    installed: str  # copy of an edited file as install left it (under STATE_DIR); "" for a created one
    installed_sha256: str
    group: str = ""  # PYTHON_GROUP: a file of fs-guard's Python packages in the script directory


@dataclass(frozen=True)
class Manifest:
    entries: Tuple[Entry, ...]
    created_dirs: Tuple[str, ...]
    log_dir: Optional[str] = None  # the last --log-dir install was given

    def entry(self, path: str) -> Optional[Entry]:
        return next((e for e in self.entries if e.path == path), None)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": 1,
                "entries": [e.__dict__ for e in self.entries],
                "created_dirs": list(self.created_dirs),
                "log_dir": self.log_dir,
            },
            indent=2,
        )


def state_dir(conf_dir: str) -> str:
    return os.path.join(os.path.abspath(conf_dir), STATE_DIR)


def load_manifest(conf_dir: str) -> Optional[Manifest]:
    data = _read(os.path.join(state_dir(conf_dir), MANIFEST))
    if data is None:
        return None
    try:
        document = json.loads(data)
        log_dir = document.get("log_dir")
        if log_dir is not None and not isinstance(log_dir, str):
            raise TypeError(f"log_dir is {type(log_dir).__name__}, not text")
        return Manifest(tuple(Entry(**e) for e in document["entries"]), tuple(document["created_dirs"]), log_dir)
    except (ValueError, KeyError, TypeError) as exc:
        raise InstallError(f"{STATE_DIR}/{MANIFEST} is damaged ({exc}); the originals are in {STATE_DIR}/backups/") from None


def _write(path: str, data: bytes, mode: int) -> None:
    """Write in place, so that an existing file keeps its owner, mode and inode."""
    existed = os.path.exists(path)
    with open(path, "r+b" if existed else "wb") as handle:
        handle.write(data)
        handle.truncate()
    if not existed:
        os.chmod(path, mode)
        _match_owner(path)


def _match_owner(path: str) -> None:
    """Running as root, give a new file or directory the owner of its parent directory."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        parent = os.stat(os.path.dirname(path))
        os.chown(path, parent.st_uid, parent.st_gid)


def _missing_dirs(path: str) -> List[str]:
    missing = []
    parent = os.path.dirname(path)
    while parent and not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    return list(reversed(missing))


def _save(state: str, manifest: Manifest) -> None:
    os.makedirs(state, exist_ok=True)
    _write(os.path.join(state, MANIFEST), manifest.to_json().encode(), 0o600)


def _keep_copy(state: str, kind: str, number: int, path: str, data: bytes) -> str:
    name = f"{kind}/{number:04d}-{os.path.basename(path)}"
    os.makedirs(os.path.join(state, kind), exist_ok=True)
    _write(os.path.join(state, *name.split("/")), data, 0o600)
    return name


def apply_install(plan: Plan) -> List[str]:
    """Write the planned changes, originals first; returns what was done, one line each
    (one line for all the files of the Python packages)."""
    state = state_dir(plan.conf_dir)
    manifest = load_manifest(plan.conf_dir) or Manifest((), ())
    done = []
    entries = {entry.path: entry for entry in manifest.entries}
    created = list(manifest.created_dirs)
    number = _next_number(manifest.entries)
    for change in plan.changes:
        entry = entries.get(change.path)
        if entry is None:
            backup = _keep_copy(state, "backups", number, change.path, change.before) if change.before is not None else None
            entry = entries[change.path] = Entry(change.path, backup, "", "", change.group)
            number += 1
        created.extend(d for d in _missing_dirs(change.path) if d not in created)
        if not change.group:
            done.append(_done_line(plan.conf_dir, change, entry))
    log_dir = plan.log_dir or manifest.log_dir
    _save(state, Manifest(tuple(entries.values()), tuple(created), log_dir))  # the originals are safe first
    for change in plan.changes:
        if change.after is None:
            os.remove(change.path)
            del entries[change.path]
            _remove_empty_parents(change.path, created)
            continue
        for directory in _missing_dirs(change.path):
            os.mkdir(directory, 0o755)
            _match_owner(directory)
        _write(change.path, change.after, change.mode)
        # what install left is kept only for an edited file: uninstall may have to take the edits out
        entry = entries[change.path]
        copy = _keep_copy(state, "installed", _number_of(entry.backup), change.path, change.after) if entry.backup else ""
        entries[change.path] = replace(entry, installed=copy, installed_sha256=_sha(change.after))
    _save(state, Manifest(tuple(entries.values()), tuple(created), log_dir))
    return done + group_lines(plan.changes, "installed")


def _number_of(kept: str) -> int:
    return int(kept.split("/")[-1].split("-", 1)[0])


def _next_number(entries: Sequence[Entry]) -> int:
    """A number no kept copy has (entries of removed files leave gaps)."""
    return 1 + max([len(entries)] + [_number_of(e.backup) for e in entries if e.backup])


def _remove_empty_parents(path: str, created: List[str]) -> None:
    """After removing ``path``, the directories install created for it that are now empty."""
    parent = os.path.dirname(path)
    while parent in created and not os.listdir(parent):
        os.rmdir(parent)
        created.remove(parent)
        parent = os.path.dirname(parent)


def group_lines(changes: Sequence[Change], verb: str) -> List[str]:
    """One line for the files of the Python packages: how many, where and what."""
    grouped = [change for change in changes if change.group]
    if not grouped:
        return []
    counts = {
        "new": sum(c.before is None for c in grouped),
        "updated": sum(c.before is not None and c.after is not None for c in grouped),
        "removed": sum(c.after is None for c in grouped),
    }
    shown = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    where = os.path.commonpath([os.path.dirname(c.path) for c in grouped])
    whys = sorted({c.why for c in grouped if c.after is not None}) or [grouped[0].why]
    return [f"{verb}  {len(grouped)} file(s) in {where} ({shown}): {'; '.join(whys)}"]


def _done_line(conf_dir: str, change: Change, entry: Entry) -> str:
    shown = fsmodel.shown_path(conf_dir, change.path)
    if change.before is None:
        return f"created  {shown}"
    if entry.backup is None:
        return f"updated  {shown}   (fs-guard's own file)"
    return f"edited   {shown}   (original: {STATE_DIR}/{entry.backup})"


# -- uninstall ------------------------------------------------------------------------


def _split_lines(text: str) -> List[str]:
    return [line for line in re.split(r"(?<=\n)", text) if line]


def revert_edits(original: str, installed: str, current: str) -> Optional[str]:
    """``current`` without install's edits, when each edited block is still there, once."""
    before, after = _split_lines(original), _split_lines(installed)
    result = current
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for tag, i1, i2, j1, j2 in reversed(matcher.get_opcodes()):
        if tag == "equal":
            continue
        added, removed = "".join(after[j1:j2]), "".join(before[i1:i2])
        if not added or result.count(added) != 1:
            return None
        result = result.replace(added, removed)
    return result


def plan_uninstall(conf_dir: str) -> Plan:
    """What uninstall would change to undo install; an empty plan when nothing is installed."""
    conf_dir = os.path.abspath(conf_dir)
    manifest = load_manifest(conf_dir)
    if manifest is None:
        return Plan(conf_dir, (), (f"fs-guard is not installed in {conf_dir} (no {STATE_DIR}/{MANIFEST})",), ())
    state = state_dir(conf_dir)
    changes: List[Change] = []
    kept: List[str] = []
    notes: List[str] = []
    for entry in reversed(manifest.entries):
        current = _read(entry.path)
        shown = fsmodel.shown_path(conf_dir, entry.path)
        if entry.backup is None:
            if current is None:
                continue
            if _sha(current) == entry.installed_sha256:
                changes.append(Change(entry.path, current, None, "created by install", group=entry.group))
            else:
                notes.append(f"{shown}: created by install and changed since: left in place (yours now)")
            continue
        original = _read(os.path.join(state, *entry.backup.split("/")))
        if original is None:
            raise InstallError(f"{STATE_DIR}/{entry.backup}, the original of {shown}, is missing")
        if current == original:
            continue
        if current is None or _sha(current) == entry.installed_sha256:
            changes.append(Change(entry.path, current, original, "restored as it was before install"))
            continue
        installed = _read(os.path.join(state, *entry.installed.split("/"))) if entry.installed else None
        reverted = revert_edits(_text(original), _text(installed), _text(current)) if installed else None
        if reverted is None:
            kept.append(f"{shown}: changed since install, fs-guard's edits cannot be undone: kept; "
                        f"the original is {STATE_DIR}/{entry.backup}")
        else:
            changes.append(Change(entry.path, current, _bytes(reverted), "fs-guard's edits removed (the file changed since install)"))
    jail = any(c.path.endswith((JAIL_FILE, FILTER_FILE)) for c in changes)
    steps = (('fs_cli -x "reloadxml"',) + (("systemctl restart fail2ban",) if jail else ())) if changes else ()
    return Plan(conf_dir, tuple(changes), tuple(notes), steps, tuple(kept))


def apply_uninstall(plan: Plan) -> List[str]:
    done = []
    for change in plan.changes:
        shown = fsmodel.shown_path(plan.conf_dir, change.path)
        if change.after is None:
            os.remove(change.path)
            if not change.group:
                done.append(f"removed  {shown}")
        else:
            _write(change.path, change.after, change.mode)
            done.append(f"restored {shown}")
    manifest = load_manifest(plan.conf_dir)
    if manifest is not None and not plan.kept:
        for directory in reversed(manifest.created_dirs):
            if os.path.isdir(directory) and not os.listdir(directory):
                os.rmdir(directory)
        _remove_tree(state_dir(plan.conf_dir))
    return done + group_lines(plan.changes, "removed")


def _remove_tree(top: str) -> None:
    for base, dirs, files in os.walk(top, topdown=False):
        for name in files:
            os.remove(os.path.join(base, name))
        for name in dirs:
            os.rmdir(os.path.join(base, name))
    os.rmdir(top)


# -- showing a plan -------------------------------------------------------------------


def diff(conf_dir: str, change: Change) -> str:
    """A unified diff of one change, paths relative to the configuration directory."""
    shown = fsmodel.shown_path(conf_dir, change.path)
    old = _text(change.before).splitlines(keepends=True) if change.before is not None else []
    new = _text(change.after).splitlines(keepends=True) if change.after is not None else []
    inside = not os.path.isabs(shown)
    lines = difflib.unified_diff(
        old,
        new,
        fromfile="/dev/null" if change.before is None else (f"a/{shown}" if inside else shown),
        tofile="/dev/null" if change.after is None else (f"b/{shown}" if inside else shown),
    )
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
    if not text:  # an empty file created or removed
        text = f"{'created' if change.before is None else 'removed'} empty file {shown}\n"
    return text
