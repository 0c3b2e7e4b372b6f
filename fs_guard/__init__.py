"""fs-guard: a toll-fraud guard for FreeSWITCH (mod_python3) that feeds fail2ban.

Kept empty on purpose: every module a call needs is imported by ``fs_guard.screen``
and stays cached, while this package stays cheap to import.
"""

__version__ = "0.1.0"
