"""What FreeSWITCH makes of a configuration directory: contexts, profiles, modules, users.

Read from the preprocessed document (``fs_guard.fsconf.fsxml``) with FreeSWITCH's own lookup
rules: the first ``<section>``, ``<configuration>`` or ``<context>`` of a name wins, the
last ``<param>`` of a name wins. Shared by ``fs-guard install`` (where to edit, and the
proof that its edits took effect), ``fs-guard audit`` and the tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

from fs_guard.fsconf import fsxml
from fs_guard.fsconf.fsxml import Element

SCREEN_MODULE = "fs_guard.screen"
EVENTS_MODULE = "fs_guard.events"
PYTHON_MODULE = "mod_python3"
#: What switch_true() accepts as true (switch_utils.h); a non-zero number is true too.
_TRUE = frozenset({"yes", "on", "true", "t", "enabled", "active", "allow"})
#: Regular expressions that match every destination, written the usual ways.
_MATCH_ALL = frozenset({"^.*$", ".*", "^(.*)$", "(.*)", "^.*", "^(.*)"})


class NotFreeSwitch(Exception):
    """The directory is not a FreeSWITCH configuration FreeSWITCH could load."""


def shown_path(conf_dir: str, path: str) -> str:
    """``path`` relative to the configuration directory when it is inside it (POSIX form)."""
    relative = os.path.relpath(path, conf_dir)
    return path if relative.startswith("..") else relative.replace(os.sep, "/")


def fs_true(value: Optional[str]) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    try:
        return int(text) != 0
    except ValueError:
        return False


@dataclass(frozen=True)
class FsConfig:
    """A loaded configuration directory."""

    conf_dir: str
    doc: fsxml.Preprocessed
    root: Element

    @property
    def variables(self) -> Mapping[str, str]:
        return self.doc.variables

    def section(self, name: str) -> Optional[Element]:
        return self.root.find("section", name=name)

    def configuration(self, name: str) -> Optional[Element]:
        section = self.section("configuration")
        return section.find("configuration", name=name) if section else None

    def context(self, name: str) -> Optional[Element]:
        """The context mod_dialplan_xml uses for ``name`` (the first of that name)."""
        dialplan = self.section("dialplan")
        return dialplan.find("context", name=name) if dialplan else None

    def contexts(self) -> List[Element]:
        """Every context that is the first of its name."""
        dialplan = self.section("dialplan")
        seen: Dict[str, Element] = {}
        for context in dialplan.findall("context") if dialplan else []:
            seen.setdefault(context.get("name"), context)
        return list(seen.values())


def load(conf_dir: str, source: fsxml.Source = fsxml.DISK) -> FsConfig:
    """Preprocess and parse ``conf_dir/freeswitch.xml``; NotFreeSwitch when that fails."""
    conf_dir = os.path.abspath(conf_dir)
    if source.read(os.path.join(conf_dir, fsxml.ROOT_FILE)) is None:
        raise NotFreeSwitch(f"{conf_dir}: no readable {fsxml.ROOT_FILE}: not a FreeSWITCH configuration directory")
    doc = fsxml.preprocess(conf_dir, source=source)
    try:
        root = fsxml.parse(doc)
    except fsxml.XmlError as exc:
        raise NotFreeSwitch(f"FreeSWITCH could not load this configuration: {exc}") from None
    if root.tag != "document":
        raise NotFreeSwitch(f"{conf_dir}/{fsxml.ROOT_FILE}: the root element is <{root.tag}>, not <document>")
    return FsConfig(conf_dir, doc, root)


# -- dialplan -------------------------------------------------------------------------


def always_true(condition: Element) -> bool:
    """Whether a ``<condition>`` matches every call (no field, or a match-all regex)."""
    attrs = {k: v for k, v in condition.attrs.items() if k != "break"}
    if not attrs:
        return True
    return set(attrs) == {"field", "expression"} and attrs["expression"] in _MATCH_ALL


def _always_matches(extension: Element) -> bool:
    return all(always_true(c) for c in extension.findall("condition"))


def continues(extension: Element) -> bool:
    return fs_true(extension.get("continue"))


def leading_action(context: Element) -> Optional[Tuple[Element, Element]]:
    """The (action, extension) that runs first for EVERY call in ``context``.

    Hunting walks the extensions in order; an always-matching extension adds its actions
    and, with continue="true", lets hunting go on. The first action added runs first.
    None when what runs first depends on the call (or nothing runs).
    """
    for extension in context.findall("extension"):
        if not extension.findall("condition"):
            continue  # matches nothing, adds nothing: hunting goes on
        if not _always_matches(extension):
            return None
        for condition in extension.findall("condition"):
            actions = condition.findall("action")
            if actions:
                return actions[0], extension
        if not continues(extension):
            return None
    return None


def is_screen(action: Element) -> bool:
    module = action.get("data").strip().split(" ", 1)[0].split("::", 1)[0]
    return action.get("application") == "python" and module == SCREEN_MODULE


def screen_runs_first(context: Element) -> bool:
    """The screen is the first action of every call and the dialplan goes on after it."""
    lead = leading_action(context)
    return lead is not None and is_screen(lead[0]) and continues(lead[1])


def screened_rule_sets(config: FsConfig) -> List[str]:
    """The rule sets the screen decides with: for each context it runs first in, the name
    its action gives (``fs_guard.screen NAME``), else the context's name."""
    names = []
    for context in config.contexts():
        if screen_runs_first(context):
            args = leading_action(context)[0].get("data").strip().partition(" ")[2].strip()
            names.append(args or context.get("name"))
    return names


# -- modules and mod_python3 -----------------------------------------------------------


def loaded_modules(config: FsConfig) -> List[str]:
    modules = config.configuration("modules.conf")
    return [load.get("module") for load in modules.path("modules", "load")] if modules else []


def startup_scripts(config: FsConfig) -> List[str]:
    python = config.configuration("python.conf")
    if python is None:
        return []
    return [p.get("value") for p in python.path("settings", "param") if p.get("name") == "startup-script"]


def runs_events_hook(config: FsConfig) -> bool:
    return any(script.split(" ", 1)[0] == EVENTS_MODULE for script in startup_scripts(config))


# -- sofia profiles ---------------------------------------------------------------------


def params(container: Optional[Element]) -> Dict[str, Element]:
    """``<param name= value=>`` children by name; the last of a name wins, as in mod_sofia."""
    found: Dict[str, Element] = {}
    for param in container.findall("param") if container is not None else []:
        found[param.get("name").lower()] = param
    return found


@dataclass(frozen=True)
class Profile:
    name: str
    element: Element
    params: Mapping[str, Element]

    def value(self, name: str) -> Optional[str]:
        param = self.params.get(name)
        return param.get("value") if param is not None else None

    def where(self, name: str) -> fsxml.Origin:
        param = self.params.get(name)
        return (param if param is not None else self.element).start

    @property
    def context(self) -> str:
        return self.value("context") or "default"  # the core's default context

    @property
    def authenticates_calls(self) -> bool:
        return fs_true(self.value("auth-calls")) and not fs_true(self.value("accept-blind-auth"))


def profiles(config: FsConfig) -> List[Profile]:
    sofia = config.configuration("sofia.conf")
    found = sofia.path("profiles", "profile") if sofia else []
    return [Profile(p.get("name"), p, params(p.find("settings"))) for p in found]


# -- directory ------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """A directory user with its effective params (domain, then group, then user)."""

    id: str
    domain: str
    element: Element
    params: Mapping[str, Element]


def users(config: FsConfig) -> Iterator[User]:
    directory = config.section("directory")
    for domain in directory.findall("domain") if directory else []:
        domain_params = params(domain.find("params"))
        for group_params, user in _domain_users(domain):
            if user.get("type") == "pointer":
                continue
            merged = {**domain_params, **group_params, **params(user.find("params"))}
            yield User(user.get("id"), domain.get("name"), user, merged)


def _domain_users(domain: Element) -> Iterator[Tuple[Dict[str, Element], Element]]:
    for user in domain.path("users", "user"):
        yield {}, user
    for group in domain.path("groups", "group"):
        group_params = params(group.find("params"))
        for user in group.path("users", "user"):
            yield group_params, user
