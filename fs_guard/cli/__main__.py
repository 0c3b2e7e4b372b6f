"""``python3 -m fs_guard.cli``: the ``fs-guard`` command where the script is not on PATH."""

import sys

from fs_guard.cli import main

sys.exit(main())
