"""Startup script: ``<param name="startup-script" value="fs_guard.events"/>`` in python.conf.xml.

mod_python3 re-executes this module each time it starts it (and on ``pyrun``), so it
only hands over to ``fs_guard.runtime.sofia_events``, which stays imported with the hook's state.
"""

from __future__ import annotations

from fs_guard.runtime.sofia_events import serve


def runtime(args: str) -> None:
    """Run the register-failure hook until FreeSWITCH shuts down; ``args`` is not used."""
    serve()
