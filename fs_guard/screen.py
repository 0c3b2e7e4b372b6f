"""Dialplan entry point: ``<action application="python" data="fs_guard.screen"/>``.

mod_python3 re-executes this module on every call, so its whole body is one import:
``handler(session, args)`` is ``fs_guard.runtime.screening.screen``, which stays imported with
all of fs-guard's state.
"""

from fs_guard.runtime.screening import screen as handler  # noqa: F401  (mod_python3 calls module.handler)
