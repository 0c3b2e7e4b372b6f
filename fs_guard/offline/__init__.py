"""The offline tools: the ``fs-guard`` command (``cli``), ``replay`` and its trace readers.

Never imported inside FreeSWITCH; they reuse ``fs_guard.runtime``'s decisions so that
what they report is what the screen does.
"""
