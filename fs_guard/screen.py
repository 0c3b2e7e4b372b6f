"""Dialplan entry point: ``<action application="python" data="fs_guard.screen"/>``.

mod_python3 re-executes this module on every call, so it only hands over to
``fs_guard.screening``, which stays imported with all of fs-guard's state.
"""

from fs_guard.screening import screen


def handler(session, args):
    screen(session, args)
