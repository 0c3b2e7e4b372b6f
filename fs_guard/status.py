"""API command: ``fs_cli -x "python fs_guard.status [reload] [json]"``.

mod_python3 re-executes this module on every command, so it only hands over to
``fs_guard.runtime.status_report``, which reads the state the screen and the hook share.
"""

from __future__ import annotations

from typing import Any

from fs_guard.runtime.status_report import answer


def fsapi(session: Any, stream: Any, env: Any, args: str) -> None:
    stream.write(answer(args))
