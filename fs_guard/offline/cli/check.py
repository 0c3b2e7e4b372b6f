"""``fs-guard check-config`` and ``fs-guard test``: the screen's own code, from a shell."""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from fs_guard.fsconf import install, site
from fs_guard.runtime import banlog, offence
from fs_guard.runtime.config import (
    CONFIG_BASENAME, ClusterSettings, Config, ConfigError, default_config, load_config, locate_config,
)
from fs_guard.runtime.destinations import Classifier, metadata_version
from fs_guard.runtime.rules import CallFacts, PrefixSet, Rules, decide, destination_of


def register(sub: "argparse._SubParsersAction") -> None:
    check = sub.add_parser("check-config", help="validate a configuration and summarise its rules")
    which = check.add_mutually_exclusive_group()
    which.add_argument("path", nargs="?", metavar="PATH", help="configuration file (the same as --config PATH)")
    _config_option(which)
    check.set_defaults(run=run_check)

    test = sub.add_parser("test", help="decide one number as the screen would")
    test.add_argument("number", help="the destination number")
    test.add_argument("--context", default="public", help="channel context or rule set (default: public)")
    test.add_argument("--ip", help="caller's source address (tells whether a ban line would be written)")
    test.add_argument("--user-agent", dest="user_agent", help="caller's SIP User-Agent")
    _config_option(test)
    test.set_defaults(run=run_test)


def _config_option(parser: "argparse._ActionsContainer") -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"configuration file (default: $FS_GUARD_CONFIG, else /etc/freeswitch/{CONFIG_BASENAME})",
    )


def resolve_config(path: Optional[str]) -> Config:
    """The named file, else the one FreeSWITCH would use, else the built-in defaults.

    Raises ConfigError when a file exists (or was named) but is not a good configuration.
    """
    if path:
        return load_config(path)
    located = locate_config()
    if os.path.exists(located.path):
        return load_config(located.path)
    missing = located.missing()
    if missing:
        raise ConfigError(located.path, [missing])
    return default_config()


def load_or_report(path: Optional[str]) -> Optional[Config]:
    """``resolve_config`` for commands: errors go to stderr, one per line; None on error."""
    try:
        return resolve_config(path)
    except ConfigError as exc:
        print(f"fs-guard: configuration {exc.source} is not valid:", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return None


def _prefixes(prefixes: PrefixSet) -> str:
    if not prefixes:
        return "none"
    shown = sorted(prefixes.prefixes)[:8]
    more = len(prefixes.prefixes) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more else "") + f" [{len(prefixes.prefixes)}]"


def describe_rules(rules: Rules) -> list:
    chars = "".join(sorted(rules.allowed_characters)) if rules.allowed_characters else "any"
    return [
        f"max length:        {rules.max_len}",
        f"deny prefixes:     {_prefixes(rules.deny)}",
        f"allow prefixes:    {_prefixes(rules.allow) if rules.allow else 'any number'}",
        f"scanner UAs:       {len(rules.deny_user_agents)}",
        f"allowed chars:     {chars}",
        *describe_destinations(rules),
        f"mode:              {'MONITOR (rejects nothing)' if rules.monitor else 'enforce'}"
        f", ban lines {'on' if rules.ban else 'off'}",
    ]


def describe_destinations(rules: Rules) -> List[str]:
    """The dialling convention and the destination rules, for check-config."""
    if rules.classifier is None:
        return ["dialling:          no home region: numbers are not classified (no emergency exemption)"]
    dialling = rules.classifier.dialling
    idd = ", ".join(dialling.international_prefixes) or "the region's own"
    national = dialling.national_prefix if dialling.national_prefix is not None else "the region's own"
    lines = [f"dialling:          home {dialling.region}, international prefix {idd}, national prefix {national}"
             + (f", outside line {dialling.outside_line}" if dialling.outside_line else "")
             + (", + is E.164" if dialling.plus_is_e164 else ", + is not E.164")]
    lines.append(f"emergency:         {', '.join(emergency_examples(rules.classifier)) or 'none known'} and every "
                 f"other emergency number of {dialling.region} always go through")
    if rules.deny_countries:
        lines.append(f"deny countries:    {', '.join(sorted(rules.deny_countries))}")
    if rules.allow_countries:
        lines.append(f"allow countries:   {', '.join(sorted(rules.allow_countries))} (only these)")
    if rules.deny_types:
        lines.append(f"deny number types: {', '.join(sorted(rules.deny_types))}")
    if rules.reject_invalid:
        lines.append("invalid numbers:   rejected")
    return lines


def emergency_examples(classifier: Classifier) -> List[str]:
    """The well-known emergency numbers that are emergency numbers of the classifier's region."""
    return [number for number in ("112", "911", "999", "000", "110", "119", "100", "101", "102", "15", "17", "18")
            if classifier.classify(number).emergency]


def metadata_line() -> str:
    try:
        version = metadata_version()
    except ImportError:
        return "numbering plans: libphonenumber NOT INSTALLED (pip install phonenumberslite)"
    return f"numbering plans: libphonenumber metadata {version} (newer: pip install -U phonenumberslite, then fs-guard install)"


def config_name(config: Config) -> str:
    """The file a configuration came from, or, for the built-in defaults, the file looked for."""
    return config.source or f"built-in defaults: no file at {locate_config().path}"


def run_check(args: argparse.Namespace) -> int:
    config = load_or_report(args.path or args.config)
    if config is None:
        return 2
    print(f"configuration: {config_name(config)}: OK")
    ban_log = site.ban_log(config)
    print(f"ban log:       {ban_log}")
    _warn_missing_directory(ban_log)
    print(f"on error:      {config.on_error} the call")
    nets = ", ".join(str(n) for n in config.trusted_networks) or "none"
    print(f"trusted nets:  {nets}")
    print(metadata_line())
    for name, rules in [("(all contexts)", config.base)] + sorted(config.contexts.items()):
        print(f"rules for {name}:")
        for line in describe_rules(rules):
            print(f"  {line}")
    limits = config.limits
    print(f"limits:        {len(limits.limits) or 'none'}" + (
        f" (at most {limits.max_keys:,} keys tracked; a lost hang-up frees its slot after "
        f"{limits.call_max_duration:g} s)" if limits else ""))
    for limit in limits.limits:
        print(f"  {limit.name}: {limit.describe()}")
        if limit.description:
            print(f"    ({banlog.escape(limit.description)})")
    if config.cluster is None:
        print("cluster:       none (limits and bans are this node's own)")
        return 0
    return _check_cluster(config.cluster)


def _check_cluster(settings: ClusterSettings) -> int:
    """PING the cluster's Redis (waiting at most its timeout): 1 when it does not answer, 2 for
    a mistake to fix in the setting or the install."""
    from fs_guard.runtime.cluster.health import Misconfigured  # brings redis-py, only with a cluster
    from fs_guard.runtime.cluster.link import ping

    shown = f"cluster:       node {settings.node}, {settings.shown_url} (keys {settings.key_prefix}*, " \
            f"timeout {settings.timeout * 1000:g} ms)"
    try:
        ok, what = ping(settings)
    except Misconfigured as exc:
        print(f"{shown}: CONFIGURATION ERROR")
        print(f"fs-guard: the cluster setting cannot work: {exc}", file=sys.stderr)
        return 2
    print(f"{shown}: {'OK, ' + what if ok else 'NOT ANSWERING: ' + what}")
    if ok:
        return 0
    print(f"fs-guard: the cluster's Redis does not answer ({what}); until it does, each node decides its limits "
          "with its own counts and shares no bans", file=sys.stderr)
    return 1


def run_test(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return 2
    context = banlog.token(args.context)
    _warn_unscreened(config, args.context)
    rules = config.rules_for(args.context)
    destination = destination_of(rules, args.number, needed=True)
    verdict = decide(rules, CallFacts(args.number, args.context, args.ip, args.user_agent, destination))
    number = banlog.quoted(args.number)
    if verdict.emergency:
        print(f"ACCEPT {number} context={context} (an emergency number of {destination.region}: "  # type: ignore
              "no rule, limit or block rejects it)")
    elif verdict.accept:
        print(f"ACCEPT {number} context={context}")
    else:
        note = " (monitor mode: would be logged, not rejected)" if rules.monitor else ""
        print(f"REJECT {number} context={context} reason={verdict.reason}{note}")
    which = f"the rules in contexts.{context}" if args.context in config.contexts else "the top-level rules"
    print(f"configuration: {config_name(config)} ({which})")
    if destination is not None:
        print(f"destination:   {destination.describe()}")
    else:
        print("destination:   not classified (these rules have no dialling.region)")
    applying = [limit.name for limit in config.limits.for_context(args.context)]
    if verdict.accept and not verdict.emergency and applying:
        print(f"limits:        {', '.join(applying)} count calls in this context (they depend on the calls "
              "before it: fs-guard replay shows what they do to recorded traffic)")
    if verdict.accept:
        return 0
    if args.ip is not None:
        print(f"ban line: {_ban_outcome(config, rules, args.ip)}")
    return 1


def _warn_unscreened(config: Config, name: str) -> None:
    """A rule set no live call is decided with (a typo?): neither in contexts nor screened.

    A context with no entry in contexts is decided with the top-level rules: that is the
    design, not worth a word where the screen runs.
    """
    if name in config.contexts:
        return
    screened = site.screened(config)
    if name not in screened.names:
        print(f"fs-guard: warning: '{banlog.escape(name)}' is neither a context the screen runs in "
              f"({', '.join(map(banlog.escape, screened.names))}: {screened.source}) nor an entry of contexts, so no "
              "live call is decided like this (a typo?); the top-level rules decided", file=sys.stderr)


def _warn_missing_directory(ban_log: install.BanLogPlace) -> None:
    if ban_log.missing_directory:
        print(f"fs-guard: warning: the ban log's directory {ban_log.missing_directory} does not exist: fs-guard "
              "cannot write ban lines there and fail2ban bans nobody (create it, fix filename, or give fs-guard "
              "install the right --log-dir)",
              file=sys.stderr)


def _ban_outcome(config: Config, rules: Rules, ip: str) -> str:
    address = offence.ban_address(ip)
    outcome = offence.ban_outcome(config, rules, address)
    if outcome == offence.BANNED:
        ban_log = site.ban_log(config)
        if ban_log.missing_directory:
            return f"would not be written (no directory {ban_log.missing_directory} for {ban_log})"
        return f"would be written: ip[{address}] to {ban_log}"
    if outcome == offence.NO_ADDRESS:
        why = f"{banlog.quoted(ip)} is not a valid IP address"
    elif outcome == offence.TRUSTED:
        why = f"{address} is in a trusted network"
    elif outcome == offence.MONITOR:
        why = "monitor mode writes none"
    elif outcome == offence.BAN_LINES_OFF:
        why = '"ban": false for these rules'
    else:
        why = outcome
    return f"would not be written ({why})"
