"""The ``fs-guard`` subcommands, one module each (see ``fs_guard.cli``)."""

from fs_guard.commands import check, replay, install, audit

MODULES = (check, replay, install, audit)
