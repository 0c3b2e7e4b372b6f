"""``python3 -m fs_guard``: the ``fs-guard`` command where the script is not on PATH."""

import sys

from fs_guard.offline.cli import main

sys.exit(main())
