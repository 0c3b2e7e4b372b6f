"""What reads and edits a FreeSWITCH configuration: the preprocessor and its model, text
edits, ``fs-guard install``/``uninstall``, ``fs-guard audit``, and the shipped bundle.

Run from the ``fs-guard`` command only; never imported inside FreeSWITCH.
"""
