"""What runs inside FreeSWITCH: the call screen's path, the event hook, status, and their state.

Imported by the entry points ``fs_guard.screen``, ``fs_guard.events`` and
``fs_guard.status``. Modules here import only the standard library, ``jsonschema``
(on the first configuration load) and each other; never ``fs_guard.fsconf`` or
``fs_guard.offline``.
"""
